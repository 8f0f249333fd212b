-- Side-by-side corpus (crates/server/tests/it/postgres_side_by_side.rs): each block runs
-- through psql -A against PostgreSQL and chronosdb, and the output must be identical.
-- `-- postgres: <sql>` gives PostgreSQL's spelling of the same question;
-- `-- differs: <reason>` runs a case on both without comparing it (a difference on
-- purpose); `-- gap: <reason>` the same for a difference still to be closed.

-- Literals of every type we return
SELECT 1;

SELECT 1 AS one, 'text' AS t, true AS yes, false AS no;

SELECT -2147483648, 2147483647, 9223372036854775807;

SELECT CAST(7 AS smallint), CAST(7 AS integer), CAST(7 AS bigint);

SELECT 1.5, 0.1, 100.0, -0.25;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT CAST(1.5 AS double precision), CAST(100 AS double precision), CAST(-0.25 AS double precision);

SELECT CAST(0.1 AS real), CAST(1234567 AS real), CAST(2.5 AS real);

SELECT CAST('Infinity' AS double precision), CAST('-Infinity' AS double precision), CAST('NaN' AS double precision);

SELECT 1e20, 1e-7, 123456789012345678.0;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT CAST(1e20 AS double precision), CAST(1e-7 AS double precision), CAST(1e15 AS double precision);

SELECT 'hello', '', 'it''s';

SELECT CAST('t' AS boolean), CAST('false' AS boolean), CAST('yes' AS boolean), CAST('0' AS boolean);

SELECT NULL;

SELECT CAST(NULL AS integer), CAST(NULL AS text), CAST(NULL AS boolean);

SELECT DATE '2024-02-29', DATE '1999-12-31';

SELECT TIMESTAMP '2023-11-14 22:10:00', TIMESTAMP '2023-11-14 22:10:00.5', TIMESTAMP '2023-11-14 22:10:00.123456';

SELECT TIMESTAMP '2024-01-01 00:00:00.010';

SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00';
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

SELECT TIMESTAMPTZ '2024-06-01 12:30:00+02';
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

SELECT INTERVAL '1 day';

SELECT INTERVAL '2 hours', INTERVAL '90 minutes', INTERVAL '1.5 seconds';

SELECT INTERVAL '1 day 2 hours 3 minutes 4 seconds';

SELECT INTERVAL '3 months', INTERVAL '1 year 2 months';

SELECT INTERVAL '-1 day', INTERVAL '0 seconds';

SELECT ARRAY[1, 2, 3];

SELECT ARRAY['a', 'b'];

-- Casts
SELECT CAST('42' AS integer), CAST('-7' AS bigint), CAST(' 12 ' AS integer);

SELECT CAST(42 AS text), CAST(-7 AS text), CAST(true AS text);

SELECT CAST(3.7 AS integer), CAST(-3.7 AS integer), CAST(2.5 AS integer);
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT CAST(CAST(2.5 AS double precision) AS integer), CAST(CAST(3.5 AS double precision) AS bigint);

SELECT CAST(1.5 AS double precision) * 2 AS doubled, CAST(0.1 AS double precision) + CAST(0.2 AS double precision) AS sum, CAST(2.5 AS real) * 2 AS r;

SELECT CAST('1.25' AS double precision), CAST('1e3' AS double precision);

SELECT CAST(CAST(1.5 AS double precision) AS text), CAST(CAST(20 AS double precision) AS text);

SELECT CAST(DATE '2024-03-01' AS timestamp);

SELECT CAST(TIMESTAMP '2024-03-01 12:34:56' AS date);

SELECT CAST(TIMESTAMP '2024-03-01 12:34:56' AS text);

SELECT CAST(TIMESTAMP '2024-03-01 12:34:56.25' AS text);

SELECT CAST('2024-03-01' AS date), CAST('2024-03-01 01:02:03' AS timestamp);

SELECT CAST(DATE '2024-03-01' AS text);

SELECT 42::text, '7'::int, 1::boolean;

SELECT CAST(1 AS double precision) / 3;

SELECT CAST(2 AS real) / 3;
-- gap: real / integer stays real here; PostgreSQL computes it in float8

-- Arithmetic
SELECT 1 + 1, 5 - 8, 6 * 7, 7 / 2, 7 % 3;

SELECT -7 / 2, -7 % 3, 7 / -2;

SELECT 7.0 / 2, 1.0 / 3;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT CAST(7 AS double precision) / 2, CAST(1 AS double precision) / 3;

SELECT 2 + 3 * 4, (2 + 3) * 4;

SELECT 9223372036854775807 + 1;

SELECT -9223372036854775807 - 2;

SELECT 9223372036854775807 * 2;

SELECT 2147483647 + 1;
-- gap: integer literals are bigint here (DataFusion); PostgreSQL types a literal that fits as integer

SELECT CAST(2147483647 AS integer) + 1;
-- gap: integer + bigint literal is bigint here; PostgreSQL computes integer + integer

SELECT CAST(32767 AS smallint) + CAST(1 AS smallint);

SELECT CAST(9223372036854775807 AS integer);

SELECT CAST(40000 AS smallint);

SELECT CAST('99999999999999999999' AS bigint);

SELECT 1 / 0;

SELECT 1 % 0;

SELECT CAST(1 AS double precision) / 0;

SELECT 1.0 / 0;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT abs(-5), abs(-2.5), abs(CAST(-1.5 AS double precision));

SELECT round(CAST(2.5 AS double precision)), round(CAST(3.5 AS double precision)), round(CAST(-2.5 AS double precision));

SELECT round(2.5), round(-2.5);
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT round(3.14159, 2), trunc(3.99), ceil(2.1), floor(-2.1);

SELECT ceil(CAST(2.1 AS double precision)), floor(CAST(-2.1 AS double precision));

SELECT sqrt(CAST(2 AS double precision)), power(CAST(2 AS double precision), 10);

SELECT ln(CAST(10 AS double precision)), log(CAST(100 AS double precision)), exp(CAST(1 AS double precision));

SELECT sign(CAST(-3 AS double precision)), sign(CAST(0 AS double precision));

SELECT pi();

SELECT mod(17, 5), mod(-17, 5), mod(17, -5), mod(CAST(7 AS smallint), CAST(3 AS smallint));

SELECT mod(5, 0);

SELECT greatest(1, 5, 3), least(1, 5, 3);

SELECT 10 & 6, 10 | 6, 1 << 4, 256 >> 2;

SELECT sqrt(CAST(-1 AS double precision));

SELECT ln(CAST(0 AS double precision));

SELECT ln(CAST(-1 AS double precision));

SELECT log(CAST(0 AS double precision));

SELECT log10(CAST(-2 AS double precision));

-- NULL handling and ordering
SELECT NULL + 1, NULL || 'x', NULL = NULL;

SELECT coalesce(NULL, 2), coalesce(NULL, NULL, 'c'), nullif(1, 1), nullif(1, 2);

SELECT NULL IS NULL, 1 IS NULL, NULL IS NOT NULL, NULL IS DISTINCT FROM 1;

SELECT host, v FROM m ORDER BY v;

SELECT host, v FROM m ORDER BY v DESC;

SELECT host, v FROM m ORDER BY v NULLS FIRST;

SELECT host, v FROM m ORDER BY v DESC NULLS LAST;

SELECT host, s FROM m ORDER BY s, host;

SELECT count(*), count(v), count(s), count(b) FROM m;

SELECT sum(v), avg(v), min(v), max(v) FROM m WHERE v IS NULL;

SELECT host FROM m WHERE v > 0 ORDER BY host;

SELECT host, v FROM m WHERE v IS NULL OR v < 0 ORDER BY time;

SELECT CASE WHEN v > 1 THEN 'big' WHEN v > 0 THEN 'small' ELSE 'other' END AS size, host FROM m ORDER BY time;

SELECT b, NOT b, b AND true, b OR false FROM m ORDER BY time;

-- Table reads
SELECT * FROM m ORDER BY time;

SELECT time, host FROM m ORDER BY time LIMIT 2;

SELECT time, host FROM m ORDER BY time LIMIT 2 OFFSET 3;

SELECT host, count(*) FROM m GROUP BY host ORDER BY host;

SELECT host, count(*) AS c FROM m GROUP BY host HAVING count(*) > 1 ORDER BY host;

SELECT DISTINCT host FROM m ORDER BY host;

SELECT host, n FROM m WHERE n BETWEEN 10 AND 25 ORDER BY n;

SELECT host FROM m WHERE host IN ('a', 'c') ORDER BY time;

SELECT host FROM m WHERE host NOT IN ('a', 'c') ORDER BY time;

SELECT v * 2 AS doubled, n + 1 FROM m ORDER BY time;

SELECT n / 3, n % 3 FROM m WHERE n IS NOT NULL ORDER BY time;

SELECT time FROM m WHERE time >= TIMESTAMP '2023-11-14 22:15:00' ORDER BY time;

SELECT host, v FROM m WHERE s = '' ORDER BY time;

SELECT count(*) FROM m WHERE s LIKE '%';

-- Aggregates and their column names
SELECT count(*) FROM m;

SELECT count(1), count(n), count(DISTINCT host) FROM m;

SELECT sum(n), sum(v), min(n), max(n) FROM m;

SELECT avg(n) FROM m;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT avg(v) FROM m;

SELECT min(time), max(time) FROM m;

SELECT min(host), max(host), min(s), max(s) FROM m;

SELECT stddev(v), variance(v) FROM m;

SELECT stddev_samp(n), var_pop(n) FROM m;
-- gap: decimal literals and numeric results (avg of integers, integer stddev) are float8 here; PostgreSQL keeps numeric scale

SELECT bool_and(b), bool_or(b) FROM m;

SELECT string_agg(host, ',' ORDER BY time) FROM m;

SELECT host, sum(n) FROM m GROUP BY host ORDER BY sum(n) DESC NULLS LAST;

SELECT count(*) AS total, sum(n) AS n_sum FROM m;

SELECT sum(CAST(n AS integer)) FROM m;

SELECT max(v) - min(v) AS spread FROM m;

SELECT count(*) FROM m WHERE false;

SELECT sum(n) FROM m WHERE false;

-- Strings
SELECT length('hello'), char_length('héllo'), octet_length('héllo');

SELECT upper('abc'), lower('ABC'), initcap('hello world');

SELECT substr('hello', 2, 3), substring('hello' FROM 2 FOR 2), left('hello', 2), right('hello', 2);

SELECT 'a' || 'b' || 'c', concat('a', NULL, 'c'), concat_ws('-', 'a', 'b', NULL, 'c');

SELECT replace('banana', 'a', 'o'), reverse('abc'), repeat('ab', 3);

SELECT trim('  x  '), ltrim('  x'), rtrim('x  '), btrim('xxhixx', 'x');

SELECT lpad('7', 3, '0'), rpad('7', 3, '*');

SELECT position('lo' IN 'hello'), strpos('hello', 'l');

SELECT split_part('a,b,c', ',', 2), split_part('a,b,c', ',', 5);

SELECT starts_with('chronos', 'chr'), 'abc' LIKE 'a%', 'abc' ILIKE 'A_C', 'abc' NOT LIKE 'b%';

SELECT md5('chronosdb');

SELECT ascii('A'), chr(66);

SELECT to_hex(255), to_hex(-1);
-- gap: integer literals are bigint here (DataFusion); PostgreSQL types a literal that fits as integer

SELECT regexp_replace('host-01', '[0-9]+', 'N');

SELECT 'abc' < 'abd', 'B' < 'a';

SELECT upper(host), length(s) FROM m ORDER BY time;

SELECT host || '-' || CAST(n AS text) FROM m ORDER BY time;

SELECT translate('hello', 'el', 'ip');

-- Date and time
SELECT date_trunc('hour', TIMESTAMP '2023-11-14 22:10:05.5');

SELECT date_trunc('day', TIMESTAMP '2023-11-14 22:10:05'), date_trunc('month', TIMESTAMP '2023-11-14 22:10:05');

SELECT date_trunc('minute', time) AS minute, count(*) FROM m GROUP BY 1 ORDER BY 1;

SELECT date_part('hour', TIMESTAMP '2023-11-14 22:10:05');

SELECT date_part('epoch', TIMESTAMP '2023-11-14 22:10:05.5');

SELECT EXTRACT(YEAR FROM TIMESTAMP '2023-11-14 22:10:05');

SELECT EXTRACT(MONTH FROM DATE '2023-11-14'), EXTRACT(DAY FROM DATE '2023-11-14');

SELECT EXTRACT(DOW FROM DATE '2023-11-14'), EXTRACT(DOY FROM DATE '2023-11-14');

SELECT substring('chronos', 3), substring('chronos' FROM 2), overlay('chronos' PLACING 'XX' FROM 2 FOR 3);

SELECT EXTRACT(HOUR FROM time), count(*) FROM m GROUP BY EXTRACT(HOUR FROM time) ORDER BY 1;

SELECT TIMESTAMP '2023-11-14 22:10:00' + INTERVAL '1 hour';

SELECT TIMESTAMP '2023-11-14 22:10:00' - INTERVAL '1 day 30 minutes';

SELECT TIMESTAMP '2024-01-31 00:00:00' + INTERVAL '1 month';

SELECT DATE '2024-01-01' + INTERVAL '12 hours';
-- gap: date + interval stays a date here; PostgreSQL gives a timestamp

SELECT TIMESTAMP '2023-11-15 00:00:00' - TIMESTAMP '2023-11-14 22:10:00';

SELECT TIMESTAMP '2023-11-14 22:10:00' < TIMESTAMP '2023-11-14 22:10:01';

SELECT to_timestamp(1700000000);
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

SELECT to_timestamp(1700000000.5);
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

SELECT make_date(2024, 2, 29);

SELECT date_bin(INTERVAL '15 minutes', TIMESTAMP '2023-11-14 22:10:05', TIMESTAMP '2000-01-01');

SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMP '2000-01-01') AS bucket, count(*) FROM m GROUP BY 1 ORDER BY 1;

SELECT time_bucket(INTERVAL '2 minutes', time) AS bucket, sum(n) FROM m GROUP BY 1 ORDER BY 1;
-- postgres: SELECT date_bin(INTERVAL '2 minutes', time, TIMESTAMP '1970-01-01') AS bucket, sum(n) FROM m GROUP BY 1 ORDER BY 1;

SELECT time_bucket(INTERVAL '1 hour', TIMESTAMP '2023-11-14 22:10:05') AS bucket;
-- postgres: SELECT date_bin(INTERVAL '1 hour', TIMESTAMP '2023-11-14 22:10:05', TIMESTAMP '1970-01-01') AS bucket;

SELECT time + INTERVAL '1 day' AS tomorrow FROM m ORDER BY time LIMIT 1;

SELECT max(time) - min(time) AS span FROM m;
-- gap: a timestamp difference (a duration) is not yet written as PostgreSQL's interval

SELECT CAST(time AS date) AS day, count(*) FROM m GROUP BY 1;

SELECT INTERVAL '1 hour' * 3, INTERVAL '1 day' / 2;
-- gap: interval * number and interval / number are not supported yet

SELECT INTERVAL '1 hour' + INTERVAL '30 minutes';

SELECT CAST(INTERVAL '2 days 3 hours' AS text);
-- gap: the cast of a constant interval to text is folded before the text rule

-- Time-zone sessions
SET TIME ZONE 'Europe/Berlin';
SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00';
-- gap: a timestamp shown in the session time zone is not yet named after its type

SET TIME ZONE 'Asia/Kolkata';
SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00';
-- gap: a timestamp shown in the session time zone is not yet named after its type

SET TIME ZONE 'America/New_York';
SELECT TIMESTAMPTZ '2024-07-01 12:00:00+00', TIMESTAMP '2024-07-01 12:00:00';
-- differs: in a session time zone every timestamp result is an instant shown in that zone (timestamptz), a TIMESTAMP literal too

SET TIME ZONE 'Europe/Berlin';
SHOW TIME ZONE;

SET TIME ZONE 'Europe/Berlin';
SELECT CAST(TIMESTAMPTZ '2024-01-01 00:00:00+00' AS text);
-- gap: the value matches; the column is named timestamp, not text

SET TIME ZONE 'Europe/Berlin';
SELECT date_trunc('day', TIMESTAMPTZ '2024-01-01 12:00:00+00');
-- gap: date_trunc truncates in UTC, not in the session time zone

SET TIME ZONE 'UTC';
SELECT TIMESTAMPTZ '2024-01-01 00:00:00+05';
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

-- Several statements in one simple query
SELECT 1 AS a \; SELECT 2 AS b;

SELECT 'x' AS first \; SELECT count(*) FROM m \; SELECT 3.5 AS last;

SELECT 1 \; SELECT 1 / 0 \; SELECT 2;

SET TIME ZONE 'UTC' \; SELECT TIMESTAMPTZ '2024-01-01 00:00:00+01';
-- differs: time values are UTC instants typed timestamp; TIMESTAMPTZ literals and to_timestamp() are timestamp in a UTC session, so they print without +00

-- Subqueries, CTEs, set operations
SELECT (SELECT max(n) FROM m) AS top;

WITH t AS (SELECT host, n FROM m WHERE n IS NOT NULL) SELECT host, n FROM t ORDER BY n;

SELECT host FROM m WHERE n = (SELECT max(n) FROM m);

SELECT 1 AS x UNION ALL SELECT 2 ORDER BY x;

SELECT host FROM m UNION SELECT 'z' ORDER BY 1;

SELECT host FROM m WHERE host = 'a' INTERSECT SELECT 'a';

SELECT x FROM (VALUES (1), (2), (3)) AS t(x) WHERE x > 1 ORDER BY x;

SELECT x, y FROM (VALUES (1, 'one'), (2, 'two')) AS t(x, y) ORDER BY x DESC;

SELECT host, n, row_number() OVER (ORDER BY time) FROM m ORDER BY time;

SELECT host, sum(n) OVER (PARTITION BY host) FROM m ORDER BY time;

SELECT host, lag(n) OVER (ORDER BY time) FROM m ORDER BY time;

SELECT v, v FROM m ORDER BY time;

SELECT count(*), count(*) FROM m;

SELECT CAST(n AS bigint), CAST(n AS int) FROM m ORDER BY time;

-- Failing statements and their SQLSTATEs
SELECT * FROM no_such_table;

SELECT no_such_column FROM m;

SELECT FROM WHERE;
-- gap: sqlparser reads WHERE as a table name here (42P01, not 42601)

SELECT 1 +;

SELEC 1;

SELECT no_such_function(1);

SELECT host + 1 FROM m;

SELECT CAST('abc' AS integer);

SELECT CAST('12x' AS bigint);

SELECT CAST('abc' AS double precision);

SELECT CAST('maybe' AS boolean);

SELECT CAST('yesterday-ish' AS timestamp);

SELECT CAST('2024-13-01' AS date);

SELECT CAST('2024-02-30' AS date);

SELECT CAST('not an interval' AS interval);

SELECT host, count(*) FROM m;

SELECT host FROM m GROUP BY n;

SELECT sum(host) FROM m;

SELECT 1 FROM m WHERE n;

SELECT * FROM m WHERE n = 'abc';

SELECT length(1, 2, 3);

SELECT (SELECT n FROM m);

SELECT host FROM m ORDER BY 7;

SELECT 1 UNION SELECT 'a', 2;

INSERT INTO no_such_table VALUES (1);

SELECT x FROM (SELECT 1 AS x, 2 AS x) AS t;

SELECT count(*) FROM m AS a, m AS b WHERE host = 'a';

SELECT CAST(2147483648 AS integer);

SELECT CAST(-32769 AS smallint);

SELECT -9223372036854775808 - 1;

SELECT CAST(1e300 AS real);

SELECT CAST(CAST(1e-300 AS double precision) AS real);

SELECT CAST(CAST(1e300 AS double precision) AS real);

SELECT CAST(CAST('Infinity' AS double precision) AS real), CAST(CAST(0.5 AS double precision) AS real);

SELECT 'abc'::no_such_type;

SELECT * FROM m LIMIT -1;

SELECT 1 \; SELECT * FROM no_such_table \; SELECT 2;

SELECT sqrt(host) FROM m;

SELECT date_trunc('fortnight', TIMESTAMP '2024-01-01 00:00:00');

SELECT EXTRACT(fortnight FROM TIMESTAMP '2024-01-01 00:00:00');

SET TIME ZONE 'Mars/Olympus_Mons';

SET no_such_setting = 1;
-- differs: unknown settings are accepted and ignored, so that no driver's start-up SET fails

SHOW no_such_setting;

SELECT lpad('x', 3, '');

-- Scalar subqueries: one row is its value, none NULL, more than one 21000
SELECT (SELECT x FROM (VALUES (1), (2)) AS v(x) WHERE x > 1) AS one_row;

SELECT (SELECT x FROM (VALUES (1), (2)) AS v(x) WHERE x > 5) AS no_row;

SELECT (SELECT x FROM (VALUES (1), (2)) AS v(x));

SELECT (SELECT max(v) FROM m) IS NOT NULL AS has_max;

SELECT host, (SELECT count(*) FROM m AS i WHERE i.host = o.host) AS n FROM m AS o ORDER BY host LIMIT 2;

-- Settings that drivers read at startup
SHOW standard_conforming_strings;

SHOW client_encoding;

SHOW integer_datetimes;
