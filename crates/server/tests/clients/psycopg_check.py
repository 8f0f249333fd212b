"""psycopg 3 against chronosdb: text and binary results, typed parameters, a server-side
cursor, transactions and COPY. Usage: psycopg_check.py PORT DB (fixture.lp loaded)."""
import datetime
import sys

import psycopg

port, db = sys.argv[1], sys.argv[2]
UTC = datetime.timezone.utc
conn = psycopg.connect(f"host=127.0.0.1 port={port} dbname={db} user=check", autocommit=True)

for binary in (False, True):
    with conn.cursor(binary=binary) as cur:
        cur.execute(
            "SELECT city, time, temperature, humidity, station, ok FROM weather "
            "WHERE city = %s AND time >= %s AND humidity > %s AND temperature < %s ORDER BY time",
            ("paris", datetime.datetime(2023, 11, 14, 22, 13, 20), 10, 100.0),
        )
        rows = cur.fetchall()
        assert rows == [
            ("paris", datetime.datetime(2023, 11, 14, 22, 13, 20), 21.5, 60, "orly", True),
            ("paris", datetime.datetime(2023, 11, 14, 22, 14, 20), 22.25, 58, "orly", True),
        ], (binary, rows)
        assert [d.name for d in cur.description] == ["city", "time", "temperature", "humidity", "station", "ok"]

with conn.cursor() as cur:
    cur.execute("SELECT count(*) AS n, count(DISTINCT city) AS cities FROM weather")
    assert cur.fetchone() == (5, 3)
    cur.execute("SELECT version()")
    assert cur.fetchone()[0].startswith("PostgreSQL "), "version() must look like PostgreSQL's"

# A server-side (named) cursor: DECLARE, Describe of the portal, FETCH in batches.
with conn.transaction():
    with conn.cursor(name="by_city") as cur:
        cur.itersize = 2
        cur.execute("SELECT city, temperature FROM weather ORDER BY city, time")
        assert [d.name for d in cur.description] == ["city", "temperature"]
        rows = list(cur)
        assert len(rows) == 5 and rows[0] == ("oslo", 3.5), rows

# Transactions are accepted (see docs/clients.md for their semantics).
with psycopg.connect(f"host=127.0.0.1 port={port} dbname={db} user=check") as tx:
    with tx.cursor() as cur:
        cur.execute("SELECT 1")
    tx.commit()

# COPY out, and COPY in through the durable write path.
with conn.cursor() as cur:
    with cur.copy("COPY (SELECT city, temperature FROM weather WHERE city = 'rome') TO STDOUT") as copy:
        assert [tuple(r) for r in copy.rows()] == [("rome", "18")], "copy out"
    cur.execute("CREATE TABLE copied (time TIMESTAMP NOT NULL, city TEXT, temperature DOUBLE PRECISION, PRIMARY KEY (city))")
    with cur.copy("COPY copied (time, city, temperature) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write("2023-11-14T22:13:20Z,lima,19.5\n2023-11-14T22:14:20Z,lima,20\n")
    cur.execute("SELECT city, temperature FROM copied ORDER BY time")
    assert cur.fetchall() == [("lima", 19.5), ("lima", 20.0)]
print("psycopg ok")
