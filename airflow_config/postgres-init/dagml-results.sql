-- docker-compose.yaml: dagml's results DB beside Airflow's metadata DB, on first start of the volume.
CREATE DATABASE dagml_results OWNER airflow;
