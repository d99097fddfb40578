// The digital twin's public surface: the launcher, its control endpoint, and the SSH carrier for other hosts.
export {
  postFault,
  readSimState,
  removeSimState,
  SimControlError,
  type SimStateFile,
  startControlServer,
  writeSimState,
} from "./control.ts";
export { allocateLoopbackBlock, type LoopbackBlock } from "./loopback.ts";
export {
  type CarrierFaults,
  generateHostKey,
  type HostKey,
  loadOrCreateHostKey,
  type SessionRecord,
  type SshUser,
  sshFingerprint,
  TwinSshServer,
} from "./ssh-server.ts";
export {
  FAULTS,
  type FaultName,
  isFaultName,
  type StartTwinOptions,
  startTwin,
  type Twin,
  type TwinAppliance,
  type TwinClientHost,
  type TwinCredentials,
  TwinFaultError,
} from "./twin.ts";
