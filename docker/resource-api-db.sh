#!/bin/sh
# The resource API's own role and database in the compose PostgreSQL (never Logto's database,
# never the superuser): run by the one-shot `resource-api-db` service of docker-compose.yml
# before the API starts, at every `docker compose up`.
#
# Idempotent: creates the role and the database when missing, and sets the role's password to
# RESOURCE_API_DB_PASSWORD every time (so changing it in .env takes effect on the next `up`).
# The API applies its own schema migrations at start-up, under a lock (two replicas may start
# at once). Connection: the libpq variables (PGHOST, PGUSER, PGPASSWORD, ...) of a superuser.
# The password reaches psql through its environment (\getenv), never a command line.
set -eu
: "${RESOURCE_API_DB_PASSWORD:?set RESOURCE_API_DB_PASSWORD}"
export RESOURCE_API_DB_NAME="${RESOURCE_API_DB_NAME:-resource_api}"
export RESOURCE_API_DB_USER="${RESOURCE_API_DB_USER:-resource_api}"
psql --no-psqlrc --quiet -v ON_ERROR_STOP=1 --dbname="${PGDATABASE:-postgres}" <<'SQL'
\getenv db_name RESOURCE_API_DB_NAME
\getenv db_user RESOURCE_API_DB_USER
\getenv db_password RESOURCE_API_DB_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', :'db_user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'db_user', :'db_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db_name', :'db_user')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db_name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db_name') \gexec
SQL
echo "resource API database ready: database ${RESOURCE_API_DB_NAME}, role ${RESOURCE_API_DB_USER}"
