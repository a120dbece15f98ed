package mitigation.stack;

import static org.neo4j.configuration.GraphDatabaseSettings.SYSTEM_DATABASE_NAME;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import inet.ipaddr.IPAddressString;
import org.neo4j.configuration.Config;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.internal.kernel.api.connectioninfo.ClientConnectionInfo;
import org.neo4j.internal.kernel.api.security.AuthenticationResult;
import org.neo4j.io.ByteUnit;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.kernel.api.security.AuthManager;
import org.neo4j.kernel.api.security.AuthToken;
import org.neo4j.kernel.impl.security.User;
import org.neo4j.kernel.internal.GraphDatabaseAPI;
import org.neo4j.logging.NullLogProvider;
import org.neo4j.logging.log4j.Log4jLogProvider;
import org.neo4j.memory.EmptyMemoryTracker;
import org.neo4j.server.security.SecureHasher;
import org.neo4j.server.security.SystemGraphCredential;
import org.neo4j.server.security.auth.CommunitySecurityModule;
import org.neo4j.server.security.auth.FileUserRepository;

/**
 * Runs an embedded Neo4j 5.26 DBMS (community) with only the Bolt connector, for the local stack
 * (no Docker). Auth is on; the configured user/password always works once Bolt is up.
 *
 * <p>Options (flag, else environment variable, else default):
 * <pre>
 *   --data-dir DIR      NEO4J_DATA_DIR       (required) Neo4j home: data/ and logs/ live under it
 *   --bolt HOST:PORT    NEO4J_BOLT_ADDRESS   127.0.0.1:7687
 *   --user NAME         NEO4J_USER           neo4j
 *   --password PW       NEO4J_PASSWORD       (required, >= 8 chars; prefer the env var, argv shows in ps)
 *   --pagecache SIZE    NEO4J_PAGECACHE      256m
 * </pre>
 * Prints exactly one line "neo4j ready bolt://HOST:PORT" once Bolt accepts connections; exits
 * non-zero with a "neo4j launcher: ..." line on stderr if it cannot get there.
 *
 * <p>Uses a few Neo4j-internal classes (auth.ini writer, AuthManager) for the password handling;
 * they are pinned by the exact version in pom.xml, so a bump that changes them fails at compile time.
 */
public final class Neo4jLauncher {

    // The DBMS that SIGTERM/SIGINT must close (phase 1 or the real one); guarded by LOCK so a
    // signal that arrives mid-start waits for build() and then shuts that instance down.
    private static final Object LOCK = new Object();
    private static DatabaseManagementService running;
    private static boolean stopping;

    public static void main(String[] args) {
        // Closing the stores cleanly means the next start needs no recovery.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            synchronized (LOCK) {
                stopping = true;
                if (running != null) {
                    System.out.println("neo4j shutting down");
                    running.shutdown();
                }
            }
        }, "neo4j-shutdown"));
        try {
            run(args);
        } catch (Throwable e) {
            synchronized (LOCK) {
                if (stopping) return; // a signal stopped us mid-start; the hook has it in hand
            }
            e.printStackTrace();
            fail("failed to start: " + e); // the cause as the last line a caller sees
        }
    }

    private static void run(String[] args) throws Exception {
        Map<String, String> flags = parseFlags(args);
        Path home = Path.of(option(flags, "data-dir", "NEO4J_DATA_DIR", null)).toAbsolutePath();
        String bolt = option(flags, "bolt", "NEO4J_BOLT_ADDRESS", "127.0.0.1:7687");
        String user = option(flags, "user", "NEO4J_USER", "neo4j");
        String password = option(flags, "password", "NEO4J_PASSWORD", null);
        long pagecache = ByteUnit.parse(option(flags, "pagecache", "NEO4J_PAGECACHE", "256m"));
        if (password.codePointCount(0, password.length()) < 8) {
            fail("NEO4J_PASSWORD must be at least 8 characters (Neo4j's minimum password length)");
        }
        int colon = bolt.lastIndexOf(':');
        if (colon <= 0) fail("bolt address must be HOST:PORT, got '" + bolt + "'");
        SocketAddress boltAddress = new SocketAddress(bolt.substring(0, colon), Integer.parseInt(bolt.substring(colon + 1)));
        Files.createDirectories(home);
        Log4jLogProvider logs = new Log4jLogProvider(System.out);

        // The caller waits for the port, so the credentials must be right before Bolt listens:
        // opening Bolt first and fixing the password afterwards would hand early clients
        // "unauthorized" (and can trip Neo4j's failed-login lockout).
        Config paths = Config.newBuilder().set(GraphDatabaseSettings.neo4j_home, home).build();
        boolean fresh = !Files.exists(paths.get(GraphDatabaseInternalSettings.databases_root_path).resolve(SYSTEM_DATABASE_NAME));
        if (fresh && user.equals(AuthManager.INITIAL_USER_NAME)) {
            // New DBMS: seed the password the way `neo4j-admin dbms set-initial-password` does.
            // Cheap, and avoids the first Cypher queries, which cost ~7 s of warm-up on 2 cores.
            writeInitialPassword(paths, password);
        } else {
            // Existing DBMS (or a custom user): check/fix the credentials with Bolt off first.
            // Costs ~1.5 s; the JVM warm-up it does is reused by the real start below.
            DatabaseManagementService setup = start(builder(home, pagecache, logs).setConfig(BoltConnector.enabled, false));
            try {
                if (!credentialsWork(setup, user, password)) ensureUser(setup.database(SYSTEM_DATABASE_NAME), user, password);
            } finally {
                synchronized (LOCK) {
                    if (!stopping) {
                        setup.shutdown();
                        running = null;
                    }
                }
            }
        }

        DatabaseManagementService dbms = start(builder(home, pagecache, logs)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, boltAddress)
                // Bolt otherwise waits 5 s + 5 s on shutdown for connections/threads to drain;
                // a local server should stop promptly (the stores are closed before this step).
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1)));

        // Safety net (should not trigger): if the seeded/checked credentials still don't work, fix
        // them now rather than serve a server nobody can log in to.
        if (!credentialsWork(dbms, user, password)) ensureUser(dbms.database(SYSTEM_DATABASE_NAME), user, password);

        awaitPort(boltAddress, Duration.ofSeconds(60));
        System.out.println("neo4j ready bolt://" + bolt);
        System.out.flush();
        new CountDownLatch(1).await(); // park main; SIGTERM/SIGINT end the JVM via the shutdown hook
    }

    private static DatabaseManagementService start(DatabaseManagementServiceBuilder builder) {
        synchronized (LOCK) {
            if (stopping) throw new IllegalStateException("stopping");
            running = builder.build();
            return running;
        }
    }

    private static DatabaseManagementServiceBuilder builder(Path home, long pagecache, Log4jLogProvider logs) {
        return new DatabaseManagementServiceBuilder(home)
                .setUserLogProvider(logs)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, pagecache)
                .setConfig(GraphDatabaseSettings.udc_enabled, false) // no usage reports (no internet anyway)
                // Transaction logs: by default each database preallocates 256 MB files and keeps two
                // days of them; too much for throwaway dev/CI data dirs. Keep them small instead.
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, ByteUnit.mebiBytes(32))
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "128M size")
                .setConfig(BoltConnectorInternalSettings.enable_local_connector, false) // in-JVM channel, unused
                // Queries come from the catalogue, written through the API: LOAD CSV must reach
                // neither files nor the network (the worker's loopback, the cloud metadata service).
                // Every address is blocked for URLs, file URLs are refused; no plugins (APOC) are installed.
                .setConfig(GraphDatabaseSettings.allow_file_urls, false)
                .setConfig(GraphDatabaseInternalSettings.cypher_ip_blocklist,
                        List.of(new IPAddressString("0.0.0.0/0"), new IPAddressString("::/0")))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false);
    }

    /** data/dbms/auth.ini is read once, when the system database is created; afterwards it is ignored. */
    private static void writeInitialPassword(Config paths, String password) throws Exception {
        Path file = CommunitySecurityModule.getInitialUserRepositoryFile(paths);
        Files.deleteIfExists(file); // left over from an earlier attempt that died before creating the DBMS
        try (DefaultFileSystemAbstraction fs = new DefaultFileSystemAbstraction()) {
            FileUserRepository repo = new FileUserRepository(fs, file, NullLogProvider.getInstance(), EmptyMemoryTracker.INSTANCE);
            repo.start();
            SystemGraphCredential credential =
                    SystemGraphCredential.createCredentialForPassword(password.getBytes(StandardCharsets.UTF_8), new SecureHasher());
            repo.create(new User(AuthManager.INITIAL_USER_NAME, null, credential, false, false));
            repo.shutdown();
        }
    }

    /** Logs in the way Bolt does, without Cypher (whose first use is slow). */
    private static boolean credentialsWork(DatabaseManagementService dbms, String user, String password) throws Exception {
        AuthManager auth = ((GraphDatabaseAPI) dbms.database(SYSTEM_DATABASE_NAME))
                .getDependencyResolver().resolveDependency(AuthManager.class);
        return auth.login(AuthToken.newBasicAuthToken(user, password), ClientConnectionInfo.EMBEDDED_CONNECTION)
                .subject().getAuthenticationResult() == AuthenticationResult.SUCCESS;
    }

    /**
     * Creates the user or resets its password (and clears "change required"), so the configured
     * credentials work also on a data dir created with another password. Embedded transactions run
     * with full privileges, so the old password is not needed.
     */
    private static void ensureUser(GraphDatabaseService system, String user, String password) {
        System.out.println("neo4j launcher: setting the password of user '" + user + "'");
        Map<String, Object> params = Map.of("user", user, "password", password);
        boolean exists = system.executeTransactionally(
                "SHOW USERS YIELD user WHERE user = $user RETURN count(*) AS n", params,
                result -> ((Number) result.next().get("n")).longValue() > 0);
        if (!exists) {
            system.executeTransactionally("CREATE USER $user SET PASSWORD $password CHANGE NOT REQUIRED", params);
            return;
        }
        try {
            system.executeTransactionally("ALTER USER $user SET PASSWORD $password CHANGE NOT REQUIRED", params);
        } catch (QueryExecutionException e) {
            // Neo4j refuses to "change" a password to its current value: the password is right and
            // only the "change required" flag is left to clear.
            if (!String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) throw e;
            system.executeTransactionally("ALTER USER $user SET PASSWORD CHANGE NOT REQUIRED", params);
        }
    }

    private static void awaitPort(SocketAddress address, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            try (Socket socket = new Socket()) {
                socket.connect(new InetSocketAddress(address.getHostname(), address.getPort()), 1000);
                return;
            } catch (IOException notYet) {
                if (System.nanoTime() > deadline) fail("Bolt did not accept connections on " + address + " within " + timeout);
                Thread.sleep(100);
            }
        }
    }

    private static Map<String, String> parseFlags(String[] args) {
        Map<String, String> flags = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                fail("usage: Neo4jLauncher [--data-dir DIR] [--bolt HOST:PORT] [--user NAME] [--password PW] [--pagecache SIZE]");
            }
            flags.put(args[i].substring(2), args[++i]);
        }
        return flags;
    }

    private static String option(Map<String, String> flags, String flag, String env, String fallback) {
        String value = flags.getOrDefault(flag, System.getenv(env));
        if (value == null || value.isEmpty()) value = fallback;
        if (value == null) fail("missing --" + flag + " (or env " + env + ")");
        return value;
    }

    private static void fail(String message) {
        System.err.println("neo4j launcher: " + message);
        System.exit(2);
    }
}
