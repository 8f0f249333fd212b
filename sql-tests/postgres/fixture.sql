CREATE TABLE m (time timestamp NOT NULL, host text, v double precision, n bigint, s text, b boolean);
INSERT INTO m VALUES
  ('2023-11-14 22:13:20', 'a', 1.5, 10, 'x', true),
  ('2023-11-14 22:14:20', 'b', -2, 20, 'y', false),
  ('2023-11-14 22:15:20', 'c', NULL, 30, NULL, NULL),
  ('2023-11-14 22:16:20', 'a', 4.25, NULL, 'z', NULL),
  ('2023-11-14 22:17:20.5', 'b', 0.125, -5, '', true);
