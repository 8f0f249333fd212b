// pgjdbc against chronosdb: DatabaseMetaData, PreparedStatement with timestamp, double,
// bigint and text parameters, ResultSet types, and a fetch-size cursor over a large result.
// Usage: java -cp postgresql.jar JdbcCheck.java PORT DB (fixture.lp loaded).
import java.sql.*;
import java.util.*;

public class JdbcCheck {
  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1];
    try (Connection c = DriverManager.getConnection(url, "check", "")) {
      DatabaseMetaData md = c.getMetaData();
      check(md.getDatabaseProductName().equals("PostgreSQL"), "product name");
      List<String> tables = new ArrayList<>();
      try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
        while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
      }
      check(tables.contains("weather"), "getTables: " + tables);
      Map<String, Integer> types = new HashMap<>();
      try (ResultSet rs = md.getColumns(null, null, "weather", "%")) {
        while (rs.next()) types.put(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"));
      }
      check(types.get("temperature") == Types.DOUBLE, "getColumns temperature: " + types);
      check(types.get("humidity") == Types.BIGINT, "getColumns humidity: " + types);
      check(types.get("time") == Types.TIMESTAMP, "getColumns time: " + types);

      String sql = "SELECT city, time, temperature, humidity, ok FROM weather"
          + " WHERE city = ? AND time >= ? AND temperature > ? AND humidity > ? ORDER BY time";
      try (PreparedStatement ps = c.prepareStatement(sql)) {
        for (int run = 0; run < 6; run++) { // past prepareThreshold: server-side prepared
          ps.setString(1, "paris");
          ps.setTimestamp(2, Timestamp.valueOf("2023-11-14 22:13:20"));
          ps.setDouble(3, 1.0);
          ps.setLong(4, 10L);
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next(), "first row");
            check(rs.getString(1).equals("paris"), "text");
            check(rs.getTimestamp(2).equals(Timestamp.valueOf("2023-11-14 22:13:20")), "timestamp " + rs.getTimestamp(2));
            check(rs.getDouble(3) == 21.5, "double");
            check(rs.getLong(4) == 60L, "bigint");
            check(rs.getBoolean(5), "boolean");
            ResultSetMetaData rmd = rs.getMetaData();
            check(rmd.getColumnType(3) == Types.DOUBLE && rmd.getColumnType(4) == Types.BIGINT, "metadata types");
            check(rs.next() && !rs.next(), "two rows");
          }
        }
      }
      c.setAutoCommit(false);
      try (Statement st = c.createStatement()) {
        st.setFetchSize(1000);
        try (ResultSet rs = st.executeQuery("SELECT value FROM generate_series(1, 250000) AS t(value)")) {
          long n = 0, sum = 0;
          while (rs.next()) { n++; sum += rs.getLong(1); }
          check(n == 250000 && sum == 250000L * 250001L / 2, "fetch-size cursor " + n);
        }
      }
      c.commit();
    }
    System.out.println("jdbc ok");
  }
}
