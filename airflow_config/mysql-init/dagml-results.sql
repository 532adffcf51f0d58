-- docker-compose.mysql.yaml: dagml's results DB beside Airflow's metadata DB, on first start of the volume.
CREATE DATABASE IF NOT EXISTS dagml_results CHARACTER SET utf8mb4;
GRANT ALL PRIVILEGES ON dagml_results.* TO 'airflow'@'%';
