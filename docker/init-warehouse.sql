-- The warehouse database beside Airflow's metadata database (ReviewLens creates its tables itself).
CREATE DATABASE warehouse OWNER airflow;
