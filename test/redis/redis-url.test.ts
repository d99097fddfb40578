import { describe, expect, it } from "vitest";
import { redact } from "../../src/config/secret.ts";
import {
  describeRedisTarget,
  parseRedisUrl,
  RedisConfigError,
  redisTargetFromEnv,
  resolveRedisTarget,
} from "../../src/redis/client.ts";

describe("Redis configuration", () => {
  it("reads every URL form", () => {
    expect(parseRedisUrl("unix:///run/lf/redis.sock?db=2")).toEqual({
      kind: "socket",
      path: "/run/lf/redis.sock",
      db: 2,
    });
    expect(parseRedisUrl("/tmp/r.sock")).toEqual({ kind: "socket", path: "/tmp/r.sock" });
    expect(parseRedisUrl("redis://cache.internal")).toEqual({
      kind: "standalone",
      host: "cache.internal",
      port: 6379,
      tls: false,
    });
    const tls = parseRedisUrl("rediss://ops:s3cr%40t-pw@10.0.0.5:6380/3");
    expect(tls).toMatchObject({
      kind: "standalone",
      host: "10.0.0.5",
      port: 6380,
      tls: true,
      db: 3,
      username: "ops",
    });
    expect(tls.kind === "standalone" && tls.password?.reveal()).toBe("s3cr@t-pw");
    expect(parseRedisUrl("redis://[::1]:7000")).toMatchObject({ host: "::1", port: 7000 });
    const sentinel = parseRedisUrl("redis-sentinel://:pw-sentinel-1@s1,s2:26380,[fd00::3]/lunamaster/1");
    expect(sentinel).toMatchObject({
      kind: "sentinel",
      name: "lunamaster",
      db: 1,
      tls: false,
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26380 },
        { host: "fd00::3", port: 26379 },
      ],
    });
    expect(parseRedisUrl("rediss-cluster://n1:7000,n2:7001")).toEqual({
      kind: "cluster",
      tls: true,
      nodes: [
        { host: "n1", port: 7000 },
        { host: "n2", port: 7001 },
      ],
    });
  });

  it("refuses what it cannot read, without echoing the password", () => {
    for (const bad of [
      "http://x",
      "redis://a,b",
      "redis://h:99999",
      "redis-sentinel://s1",
      "redis-cluster://n1/2",
      "redis://h/abc",
      "unix://relative.sock",
      "nonsense",
    ]) {
      expect(() => parseRedisUrl(bad), bad).toThrow(RedisConfigError);
    }
    try {
      parseRedisUrl("redis://user:Very-Secret-77@h:notaport");
      expect.unreachable();
    } catch (err) {
      expect(String(err)).not.toContain("Very-Secret-77");
    }
  });

  it("takes REDIS_SENTINELS / REDIS_CLUSTER_NODES with the separate credential variables", () => {
    const s = redisTargetFromEnv({
      REDIS_SENTINELS: "s1:26379,s2",
      REDIS_SENTINEL_NAME: "mymaster",
      REDIS_PASSWORD: "master-pw-1",
      REDIS_SENTINEL_PASSWORD: "sentinel-pw-1",
      REDIS_TLS: "1",
    });
    expect(s).toMatchObject({ kind: "sentinel", name: "mymaster", tls: true });
    expect(s?.kind === "sentinel" && [s.password?.reveal(), s.sentinelPassword?.reveal()]).toEqual([
      "master-pw-1",
      "sentinel-pw-1",
    ]);
    expect(redisTargetFromEnv({ REDIS_CLUSTER_NODES: "n1:7000" })).toMatchObject({ kind: "cluster" });
    expect(() => redisTargetFromEnv({ REDIS_SENTINELS: "s1" })).toThrow(/REDIS_SENTINEL_NAME/);
    expect(() => redisTargetFromEnv({ REDIS_URL: "redis://h", REDIS_CLUSTER_NODES: "n1" })).toThrow(
      /only one/,
    );
    expect(redisTargetFromEnv({})).toBeUndefined();
  });

  it("prefers explicit url, then env, then the embedded socket", () => {
    expect(resolveRedisTarget({ env: {}, socketPath: "/d/redis.sock" })).toEqual({
      kind: "socket",
      path: "/d/redis.sock",
    });
    expect(
      resolveRedisTarget({ env: { REDIS_URL: "redis://h" }, socketPath: "/d/redis.sock" }),
    ).toMatchObject({
      kind: "standalone",
    });
    expect(resolveRedisTarget({ url: "/x.sock", env: { REDIS_URL: "redis://h" } })).toMatchObject({
      kind: "socket",
    });
    expect(() => resolveRedisTarget({ env: {} })).toThrow(/no Redis configured/);
  });

  it("describes a target without its password, and the password is redacted everywhere", () => {
    const t = parseRedisUrl("redis://ops:Pw-In-Url-123@h:6379/2");
    const text = describeRedisTarget(t);
    expect(text).toBe("redis://ops@h:6379/2 (password set)");
    expect(redact("AUTH Pw-In-Url-123")).toBe("AUTH [REDACTED]");
    expect(JSON.stringify(t)).not.toContain("Pw-In-Url-123");
  });
});
