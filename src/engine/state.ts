// Durable key-value facts a runbook keeps between jobs (ctx.state), in Redis under one namespace. Small and
// deliberately dumb: the HA breaker's failure counts are its first user. Keys are plain words a runbook builds from
// names in the fleet file; anything else is refused so a key can never reach outside the namespace.
import { type RedisClient, scanKeys } from "../redis/client.ts";
import { EngineError } from "./errors.ts";
import type { StateStore } from "./ports.ts";

const STATE_PREFIX = "lunafleet:state:";
const KEY = /^[A-Za-z0-9][A-Za-z0-9:._/-]{0,200}$/;

class StateKeyInvalid extends EngineError {
  override name = "StateKeyInvalid";
}

function keyOf(key: string): string {
  if (!KEY.test(key)) throw new StateKeyInvalid(`state key '${key}' is not a plain key`);
  return `${STATE_PREFIX}${key}`;
}

export class RedisStateStore implements StateStore {
  constructor(private readonly redis: RedisClient) {}

  async get(key: string): Promise<string | null> {
    return this.redis.get(keyOf(key));
  }
  async set(key: string, value: string): Promise<void> {
    await this.redis.set(keyOf(key), value);
  }
  async incr(key: string): Promise<number> {
    return this.redis.incr(keyOf(key));
  }
  async del(key: string): Promise<void> {
    await this.redis.del(keyOf(key));
  }
  /** Keys under `prefix` (without the namespace), for listings such as `lunafleet ha breakers`. */
  async keys(prefix: string): Promise<string[]> {
    const keys = await scanKeys(this.redis, `${keyOf(prefix)}*`, 200);
    return keys.map((k) => k.slice(STATE_PREFIX.length)).sort();
  }
}
