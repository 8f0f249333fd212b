"""SQLAlchemy (psycopg driver) against chronosdb: dialect start-up, listing tables,
column reflection, whole-table reflection (`autoload_with`: keys, indexes, constraints,
comment, options) and queries built with the expression language. Usage:
sqlalchemy_check.py PORT DB.
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
    # chronosdb tables have no keys, indexes or constraints: reflected as empty.
    assert inspector.get_pk_constraint("weather")["constrained_columns"] == []
    assert inspector.get_indexes("weather") == []
    assert inspector.get_unique_constraints("weather") == []
    assert inspector.get_foreign_keys("weather") == []
    assert inspector.get_check_constraints("weather") == []
    weather = sa.Table("weather", sa.MetaData(), autoload_with=c)
    assert [col.name for col in weather.columns] == list(columns), weather.columns
    assert isinstance(weather.c.temperature.type, sa.Float), weather.c.temperature.type
    assert list(weather.primary_key.columns) == [] and weather.indexes == set()
    q = (
        sa.select(weather.c.city, sa.func.max(weather.c.temperature).label("hottest"))
        .where(weather.c.country != "it")
        .group_by(weather.c.city)
        .order_by(weather.c.city)
    )
    assert c.execute(q).fetchall() == [("oslo", 4.0), ("paris", 22.25)]
print("sqlalchemy ok")
