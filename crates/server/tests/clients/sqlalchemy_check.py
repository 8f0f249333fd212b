"""SQLAlchemy (psycopg driver) against chronosdb: dialect start-up, listing tables,
column reflection and a query built with the expression language. Usage:
sqlalchemy_check.py PORT DB.

Not here yet: `Table(..., autoload_with=...)`, which also reflects keys and indexes with
queries over `unnest` of catalog arrays that DataFusion refuses.
"""
import sys

import sqlalchemy as sa

port, db = sys.argv[1], sys.argv[2]
engine = sa.create_engine(f"postgresql+psycopg://check@127.0.0.1:{port}/{db}")
with engine.connect() as c:
    inspector = sa.inspect(c)
    assert "weather" in inspector.get_table_names(), inspector.get_table_names()
    columns = {col["name"]: str(col["type"]) for col in inspector.get_columns("weather")}
    assert columns == {
        "time": "TIMESTAMP",
        "city": "TEXT",
        "country": "TEXT",
        "temperature": "DOUBLE PRECISION",
        "humidity": "BIGINT",
        "station": "TEXT",
        "ok": "BOOLEAN",
    }, columns
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
