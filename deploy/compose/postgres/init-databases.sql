-- Runs once, when the postgres volume is first initialised. POSTGRES_DB creates the
-- application database `autoloader`; Prefect and the Iceberg JDBC catalog get their own.
CREATE DATABASE prefect OWNER autoloader;
CREATE DATABASE iceberg_catalog OWNER autoloader;
