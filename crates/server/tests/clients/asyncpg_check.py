"""asyncpg against chronosdb: binary results, prepared statements with typed parameters and
a cursor that fetches in batches. Usage: asyncpg_check.py PORT DB (fixture.lp loaded)."""
import asyncio
import datetime
import sys

import asyncpg

port, db = int(sys.argv[1]), sys.argv[2]


async def main():
    c = await asyncpg.connect(host="127.0.0.1", port=port, database=db, user="check")
    rows = await c.fetch(
        "SELECT city, time, temperature, humidity, station, ok FROM weather WHERE city = $1 ORDER BY time",
        "oslo",
    )
    assert [tuple(r) for r in rows] == [
        ("oslo", datetime.datetime(2023, 11, 14, 22, 13, 20), 3.5, 80, "gardermoen", False),
        ("oslo", datetime.datetime(2023, 11, 14, 22, 14, 20), 4.0, 79, "gardermoen", True),
    ], rows
    st = await c.prepare("SELECT $1::bigint + 1 AS a, $2::float8 * 2 AS b, $3::text AS c, $4::timestamp AS d")
    for _ in range(3):  # executed several times, as prepared statements are
        assert tuple(await st.fetchrow(41, 1.5, "x", datetime.datetime(2020, 1, 1))) == (
            42, 3.0, "x", datetime.datetime(2020, 1, 1))
    assert [a.name for a in st.get_attributes()] == ["a", "b", "c", "d"]
    async with c.transaction():
        seen = [r["city"] async for r in c.cursor("SELECT city FROM weather ORDER BY city", prefetch=2)]
        assert seen == ["oslo", "oslo", "paris", "paris", "rome"], seen
    await c.close()


asyncio.run(main())
print("asyncpg ok")
