"""psqlODBC through unixODBC (driven by pyodbc) against chronosdb: SQLTables, SQLColumns
and a query with parameters. Usage: odbc_check.py PORT DB (fixture.lp loaded)."""
import datetime
import sys

import pyodbc

port, db = sys.argv[1], sys.argv[2]
c = pyodbc.connect(
    f"DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT={port};DATABASE={db};UID=check;PWD=",
    autocommit=True,
)
cur = c.cursor()
tables = [r.table_name for r in cur.tables(tableType="TABLE")]
assert "weather" in tables, tables
columns = {r.column_name: r.type_name for r in cur.columns(table="weather")}
assert columns["temperature"] == "float8" or columns["temperature"].startswith("double"), columns
assert columns["time"].startswith("timestamp"), columns
cur.execute(
    "SELECT city, time, temperature, humidity FROM weather WHERE city = ? AND humidity >= ? ORDER BY time",
    "paris", 0,
)
rows = [tuple(r) for r in cur.fetchall()]
assert rows == [
    ("paris", datetime.datetime(2023, 11, 14, 22, 13, 20), 21.5, 60),
    ("paris", datetime.datetime(2023, 11, 14, 22, 14, 20), 22.25, 58),
], rows
print("odbc ok")
