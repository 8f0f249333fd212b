"""SQLAlchemy (psycopg driver) against chronosdb: dialect start-up, listing tables and a
query built with the expression language. Usage: sqlalchemy_check.py PORT DB.

Column reflection (`inspector.get_columns`, `autoload_with`) is not here yet: SQLAlchemy's
query needs `json_build_object`, `pg_sequence` and `pg_collation`, which the catalog lacks.
"""
import sys

import sqlalchemy as sa

port, db = sys.argv[1], sys.argv[2]
engine = sa.create_engine(f"postgresql+psycopg://check@127.0.0.1:{port}/{db}")
with engine.connect() as c:
    inspector = sa.inspect(c)
    assert "weather" in inspector.get_table_names(), inspector.get_table_names()
    weather = sa.Table(
        "weather",
        sa.MetaData(),
        sa.Column("time", sa.DateTime),
        sa.Column("city", sa.Text),
        sa.Column("country", sa.Text),
        sa.Column("temperature", sa.Float),
    )
    q = (
        sa.select(weather.c.city, sa.func.max(weather.c.temperature).label("hottest"))
        .where(weather.c.country != "it")
        .group_by(weather.c.city)
        .order_by(weather.c.city)
    )
    assert c.execute(q).fetchall() == [("oslo", 4.0), ("paris", 22.25)]
print("sqlalchemy ok")
