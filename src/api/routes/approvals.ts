// Job approvals over the API. Wired to the approval store once its awaiting-approval change lands (see git log).
import type { ApiApp, ApiRouteContext } from "../server.ts";

export function registerApprovalRoutes(_app: ApiApp, _ctx: ApiRouteContext): void {}
