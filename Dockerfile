# One image for every dagml service: Airflow, dagml, and the R and Java runtimes the
# r and spark workers need (from Debian's packages; CRAN is not needed); curl for the
# healthchecks; mysqlclient (built against Debian's libmysqlclient) for docker-compose.mysql.yaml.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless r-base-core r-cran-glmnet \
      r-cran-ranger r-cran-gbm r-cran-e1071 gcc g++ curl default-libmysqlclient-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/dagml
COPY requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt mysqlclient==2.3.1
COPY include ./include
RUN pip install --no-cache-dir --no-deps -e .
COPY dags ./dags
COPY plugins ./plugins
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/dagml/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/dagml/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
