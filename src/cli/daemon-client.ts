// How every CLI command reaches the daemon: ONE client with two transports, and the commands render whatever it
// returns.
//   api    LUNAFLEET_URL is set: the daemon's HTTPS API with a bearer token (LUNAFLEET_TOKEN, or the file named by
//          LUNAFLEET_TOKEN_FILE: a lunafleet API token or an OIDC access token). The principal is the token's.
//   local  on the daemon host: the same operations (src/api/ops) run in this process on the data dir's Redis (or
//          REDIS_URL), for the principal of the OS account running the command (its uid; the fleet file's
//          `identity.principals[].os` names it, else `os:<user>` with identity.localRoles).
// Both answer the same JSON (the local answers go through JSON like the API's) and refuse alike: an ApiCallError with
// the HTTP status the API would send (400 bad request, 403 role, 404 unknown, 409 refused, 0 daemon unreachable).
// Which principal acts is never a command-line choice: the requester of a job, who cancels, rejects, releases, is
// whoever authenticated (README "Who asks, who approves").

import { ApiError, schemaRefusal } from "../api/errors.ts";
import type { ApprovalBody, ApprovalView } from "../api/ops/approvals.ts";
import type { OpContext, OpServices } from "../api/ops/context.ts";
import type { BreakerRow, ScheduleRow } from "../api/ops/fleet.ts";
import type { GuardReleaseBody } from "../api/ops/guard.ts";
import type { JobDetail, JobRequest, JobRow, JobStateFilter, JobStatus } from "../api/ops/jobs.ts";
import { IDENTITY_DEFAULT } from "../config/identity-schema.ts";
import type { Fleet } from "../config/schema.ts";
import type { ApprovalState } from "../coord/approvals.ts";
import type { JobPlan } from "../engine/plan.ts";
import type { SignedVerification } from "../evidence/audit.ts";
import type { LedgerEntry } from "../guard/ledger.ts";
import type { GuardReleaseRequest, ReleaseDecision } from "../guard/release-rules.ts";
import { currentOsUser, type Principal, principalFromOsAccount } from "../identity/principal.ts";
import type { Operation } from "../identity/roles.ts";
import type { TokenInfo } from "../identity/tokens.ts";
import type { CancelOutcome, SubmittedJob } from "../queue/jobs.ts";
import { ApiCallError, type ApiClient, apiClientFromEnv } from "./api-client.ts";
import { type CliConnection, connectCli, DaemonUnavailable } from "./connection.ts";

export { ApiCallError };

export type EvidenceVerifyAnswer = SignedVerification & { log: string; where?: string };

export interface DaemonClient {
  /** `api` over LUNAFLEET_URL, `local` on the daemon host's data dir. */
  readonly transport: "api" | "local";
  /** Where: the API's URL, or the Redis the local operations use. */
  readonly where: string;
  whoami(): Promise<Principal & { operations: Operation[] }>;
  plan(req: JobRequest): Promise<{ plan: JobPlan; planDigest: string }>;
  submit(req: JobRequest): Promise<SubmittedJob>;
  jobs(q: { state?: JobStateFilter | undefined; limit: number }): Promise<JobRow[]>;
  job(id: string): Promise<JobDetail>;
  jobStatus(id: string): Promise<JobStatus>;
  cancel(id: string): Promise<{ id: string; outcome: CancelOutcome; by: string }>;
  approvals(): Promise<ApprovalState[]>;
  approval(id: string): Promise<ApprovalView>;
  approve(id: string, body: ApprovalBody): Promise<ApprovalState>;
  reject(id: string, reason: string): Promise<ApprovalState>;
  report(opts?: { device?: string | undefined; staleAfterMs?: number | undefined }): Promise<unknown>;
  guardStatus(): Promise<LedgerEntry[]>;
  guardRelease(body: GuardReleaseBody): Promise<ReleaseDecision>;
  guardReleaseRequest(id: string): Promise<GuardReleaseRequest>;
  approveGuardRelease(
    id: string,
    body: ApprovalBody,
  ): Promise<{ id: string; status: "released"; evidenceJobId: string }>;
  breakers(): Promise<BreakerRow[]>;
  releaseBreaker(body: {
    group: string;
    member: string;
    reason?: string | undefined;
  }): Promise<{ group: string; member: string; cleared: number; evidenceJobId: string; by: string }>;
  schedules(): Promise<ScheduleRow[]>;
  /** The daemon's published evidence-signing public keys (key id -> PEM). */
  evidenceKeys(): Promise<Record<string, string>>;
  verifyEvidence(id: string): Promise<EvidenceVerifyAnswer>;
  verifyAllEvidence(): Promise<{ ok: boolean; logs: EvidenceVerifyAnswer[] }>;
  exportEvidence(since: Date): Promise<{ lines: string[]; problems: { log: string; detail: string }[] }>;
  tokens(): Promise<TokenInfo[]>;
  createToken(body: {
    name: string;
    role: string;
    expires: string;
  }): Promise<{ token: string; record: TokenInfo }>;
  revokeToken(name: string): Promise<{ name: string; revoked: number }>;
  close(): Promise<void>;
}

export interface OpenClientOptions {
  dataDir?: string | undefined;
  /** A fleet file to check requests against instead of the daemon's (daemon host only: over the API its fleet rules). */
  fleetFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/** A usage mistake the client finds before anything is sent (exit 2). */
export class ClientUsageError extends Error {
  override name = "ClientUsageError";
}

/** The client the environment asks for: the API when LUNAFLEET_URL is set, else the local operations. */
export async function openDaemonClient(opts: OpenClientOptions = {}): Promise<DaemonClient> {
  const env = opts.env ?? process.env;
  const api = apiClientFromEnv(env, opts.dataDir);
  if (api) {
    if (opts.fleetFile)
      throw new ClientUsageError(
        "--fleet is for the daemon host; over the API (LUNAFLEET_URL) the daemon's own fleet decides",
      );
    return remoteClient(api);
  }
  return localClient(opts);
}

// ---- api ----

function remoteClient(api: ApiClient): DaemonClient {
  const q = (params: Record<string, string | number | undefined>) => {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v));
    const text = s.toString();
    return text ? `?${text}` : "";
  };
  const id = encodeURIComponent;
  return {
    transport: "api",
    where: api.url,
    whoami: () => api.call("GET", "/v1/whoami"),
    plan: (req) => api.call("POST", "/v1/plan", req),
    submit: (req) => api.call("POST", "/v1/jobs", req),
    jobs: (o) => api.call("GET", `/v1/jobs${q({ state: o.state, limit: o.limit })}`),
    job: (j) => api.call("GET", `/v1/jobs/${id(j)}`),
    jobStatus: (j) => api.call("GET", `/v1/jobs/${id(j)}/status`),
    cancel: (j) => api.call("POST", `/v1/jobs/${id(j)}/cancel`),
    approvals: () => api.call("GET", "/v1/approvals"),
    approval: (j) => api.call("GET", `/v1/approvals/${id(j)}`),
    approve: (j, body) => api.call("POST", `/v1/approvals/${id(j)}/approve`, body),
    reject: (j, reason) => api.call("POST", `/v1/approvals/${id(j)}/reject`, { reason }),
    report: (o = {}) => api.call("GET", `/v1/report${q({ device: o.device, staleAfterMs: o.staleAfterMs })}`),
    guardStatus: () => api.call("GET", "/v1/guard"),
    guardRelease: (body) => api.call("POST", "/v1/guard/release", body),
    guardReleaseRequest: (r) => api.call("GET", `/v1/guard/releases/${id(r)}`),
    approveGuardRelease: (r, body) => api.call("POST", `/v1/guard/releases/${id(r)}/approve`, body),
    breakers: () => api.call("GET", "/v1/ha/breakers"),
    releaseBreaker: (body) => api.call("POST", "/v1/ha/breakers/release", body),
    schedules: () => api.call("GET", "/v1/schedules"),
    evidenceKeys: () => api.call("GET", "/v1/evidence/keys"),
    verifyEvidence: (l) => api.call("GET", `/v1/evidence/${id(l)}/verify`),
    verifyAllEvidence: () => api.call("GET", "/v1/evidence/verify-all"),
    async exportEvidence(since) {
      const res = await api.text("GET", `/v1/evidence/export${q({ since: since.toISOString() })}`);
      const detail = res.headers["x-lunafleet-evidence-problem-detail"];
      return {
        lines: res.text.split("\n").filter((l) => l.length > 0),
        problems: typeof detail === "string" ? JSON.parse(decodeURIComponent(detail)) : [],
      };
    },
    tokens: () => api.call("GET", "/v1/tokens"),
    createToken: (body) => api.call("POST", "/v1/tokens", body),
    revokeToken: (name) => api.call("DELETE", `/v1/tokens/${id(name)}`),
    close: async () => {},
  };
}

// ---- local ----

async function localClient(opts: OpenClientOptions): Promise<DaemonClient> {
  const { loadFleetForSubmit, readPublishedFleet } = await import("../queue/jobs.ts");
  // A given fleet file is loaded and checked before anything connects.
  const fileFleet = opts.fleetFile ? loadFleetForSubmit(opts.fleetFile) : undefined;
  const conn: CliConnection = await connectCli(opts.dataDir ? { dataDir: opts.dataDir } : {});
  let fleet: Fleet | undefined;
  try {
    fleet = fileFleet ?? (await readPublishedFleet(conn.redis));
  } catch (err) {
    await conn.close();
    throw conn.explain(err);
  }
  const { readSigner } = await import("../evidence/signing.ts");
  const principal = principalFromOsAccount(currentOsUser(), fleet?.identity ?? IDENTITY_DEFAULT);
  const services: OpServices = {
    redis: conn.redis,
    queue: conn.queue,
    get fleet(): Fleet {
      if (!fleet)
        throw new ApiError(
          503,
          "the daemon has not published a fleet yet (is it running on this data dir?); pass --fleet <file>",
        );
      return fleet;
    },
    dataDir: conn.dataDir,
    evidenceSigner: readSigner(conn.dataDir),
    async report(o) {
      const { reportService } = await import("../daemon/report-service.ts");
      return reportService(conn.redis, services.fleet, o);
    },
  };
  const ctx: OpContext = { services, principal };
  /** Run an operation as the API would: its refusals become ApiCallErrors, its answer goes through JSON. */
  const run = async <T>(op: (ctx: OpContext) => T | Promise<T>): Promise<T> => {
    try {
      const out = await op(ctx);
      return out === undefined ? out : (JSON.parse(JSON.stringify(out)) as T);
    } catch (err) {
      if (err instanceof ApiError)
        throw new ApiCallError(err.statusCode, err.message, { error: err.message, ...err.details });
      throw conn.explain(err);
    }
  };
  const jobs = () => import("../api/ops/jobs.ts");
  const approvals = () => import("../api/ops/approvals.ts");
  const guard = () => import("../api/ops/guard.ts");
  const fleetOps = () => import("../api/ops/fleet.ts");
  const evidence = () => import("../api/ops/evidence.ts");
  return {
    transport: "local",
    where: conn.where,
    whoami: async () => run((await fleetOps()).whoamiOp),
    plan: async (req) => run(async (c) => (await jobs()).planOp(c, req)),
    submit: async (req) => run(async (c) => (await jobs()).submitJobOp(c, req)),
    jobs: async (o) => run(async (c) => (await jobs()).listJobsOp(c, o)),
    job: async (j) => run(async (c) => (await jobs()).jobDetailOp(c, j)),
    jobStatus: async (j) => run(async (c) => (await jobs()).jobStatusOp(c, j)),
    cancel: async (j) => run(async (c) => (await jobs()).cancelJobOp(c, j)),
    approvals: async () => run(async (c) => (await approvals()).listApprovalsOp(c)),
    approval: async (j) => run(async (c) => (await approvals()).getApprovalOp(c, j)),
    approve: async (j, body) =>
      run(async (c) => {
        const m = await approvals();
        return m.approveOp(c, j, parseBody(m.approvalBodySchema, body));
      }),
    reject: async (j, reason) =>
      run(async (c) => {
        const m = await approvals();
        return m.rejectOp(c, j, parseBody(m.rejectBodySchema, { reason }));
      }),
    report: async (o = {}) => run(async (c) => (await fleetOps()).reportOp(c, o)),
    guardStatus: async () => run(async (c) => (await guard()).guardStatusOp(c)),
    guardRelease: async (body) =>
      run(async (c) => {
        const m = await guard();
        return m.guardReleaseOp(c, parseBody(m.guardReleaseBodySchema, body));
      }),
    guardReleaseRequest: async (r) => run(async (c) => (await guard()).getGuardReleaseOp(c, r)),
    approveGuardRelease: async (r, body) =>
      run(async (c) => {
        const m = await approvals();
        return (await guard()).approveGuardReleaseOp(c, r, parseBody(m.approvalBodySchema, body));
      }),
    breakers: async () => run(async (c) => (await fleetOps()).breakersOp(c)),
    releaseBreaker: async (body) =>
      run(async (c) => {
        const m = await fleetOps();
        return m.releaseBreakerOp(c, parseBody(m.releaseBreakerBodySchema, body));
      }),
    schedules: async () => run(async (c) => (await fleetOps()).schedulesOp(c)),
    evidenceKeys: async () => run(async (c) => (await evidence()).evidenceKeysOp(c)),
    verifyEvidence: async (l) => run(async (c) => (await evidence()).verifyEvidenceOp(c, l)),
    verifyAllEvidence: async () => run(async (c) => (await evidence()).verifyAllEvidenceOp(c)),
    exportEvidence: async (since) => run(async (c) => (await evidence()).exportEvidenceOp(c, since)),
    tokens: async () => run(async (c) => (await fleetOps()).listTokensOp(c)),
    createToken: async (body) =>
      run(async (c) => {
        const m = await fleetOps();
        return m.createTokenOp(c, parseBody(m.createTokenBodySchema, body));
      }),
    revokeToken: async (name) => run(async (c) => (await fleetOps()).revokeTokenOp(c, name)),
    close: () => conn.close(),
  };
}

/** The API validates bodies with these schemas; so does the local transport (same 400 and message). */
function parseBody<T>(
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  value: unknown,
): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({
    path: `/${i.path.map(String).join("/")}`,
    message: i.message,
  }));
  throw new ApiError(400, schemaRefusal(issues), { issues });
}

/** The exit code of a refusal: 3 the daemon is not reachable, 2 a job or request that does not exist, else 1. */
export function exitCodeOfRefusal(err: unknown): number {
  if (err instanceof DaemonUnavailable) return 3;
  if (err instanceof ClientUsageError) return 2;
  if (err instanceof ApiCallError) return err.status === 0 ? 3 : 1;
  return 1;
}
