"""The dagml pages inside Airflow's UI; the plugin itself is dagml_ui_plugin.py."""
