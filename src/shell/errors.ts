// The errors of talking to a device through its shell. Each names the target, the command and the cause (redacted),
// and none is retried (NonRetryable, through DeviceOpError): the outcome of a timed-out command is unknown, an
// unexpected prompt or a refused command would meet the same answer again, and a device error or an unreadable reply
// is the device's answer. A device error keeps everything the device said: its code, its name, its message and every
// Warning/Caution line — the one place lunafleet keeps device error text (read by the command's parser, nowhere else).
import { redact } from "../config/secret.ts";
import { DeviceOpError, type OpErrorInit } from "../transport/errors.ts";

/** A command did not come back to the prompt in time; its outcome is unknown. */
export class CommandTimeout extends DeviceOpError {
  override name = "CommandTimeout";
  readonly kind = "CommandTimeout" as const;
  constructor(init: OpErrorInit) {
    super(init, false);
  }
}

/** The device asked something the step did not expect (unknown prompt, undeclared confirmation, LAST caution). */
export class UnexpectedPrompt extends DeviceOpError {
  override name = "UnexpectedPrompt";
  readonly kind = "UnexpectedPrompt" as const;
  constructor(
    init: OpErrorInit,
    /** The tail of the output that held the prompt (redacted, at most a few lines). */
    readonly prompt: string,
  ) {
    super(init, false);
  }
}

/** The command policy refused to send the command; nothing reached the device. */
export class CommandRefused extends DeviceOpError {
  override name = "CommandRefused";
  readonly kind = "CommandRefused" as const;
  constructor(
    init: Omit<OpErrorInit, "cause">,
    readonly rule: string,
    readonly ruleReason: string,
  ) {
    super({ ...init, cause: `refused by command policy rule '${rule}': ${ruleReason}` }, false);
  }
}

/** What a device reported when it refused a command, as its parser read it (parsers/ DeviceError). */
export interface DeviceReport {
  /** Luna return code as printed (`A00000`, `0xa0`), or the `Command Result` number when no code was printed. */
  code: string;
  /** Symbolic name (`LUNA_RET_UM_PIN_INCORRECT`) or the footer text. */
  name: string;
  message: string;
  /** Every Warning/Caution text printed with it. */
  warnings: readonly string[];
}

/** The device answered with an error (`Error:` block, non-zero `Command Result`), as the command's parser read it. */
export class DeviceError extends DeviceOpError {
  override name = "DeviceError";
  readonly kind = "DeviceError" as const;
  readonly code: string;
  readonly errorName: string;
  readonly deviceMessage: string;
  readonly warnings: readonly string[];
  constructor(init: Omit<OpErrorInit, "cause">, report: DeviceReport) {
    const warned = report.warnings.length > 0 ? ` [${report.warnings.join(" ")}]` : "";
    super(
      { ...init, cause: `device error ${report.code} (${report.name}): ${report.message}${warned}` },
      false,
    );
    this.code = report.code;
    this.errorName = report.name;
    this.deviceMessage = report.message;
    this.warnings = [...report.warnings];
  }

  /** The report as its parser gave it (what runbooks read). */
  get report(): DeviceReport {
    return { code: this.code, name: this.errorName, message: this.deviceMessage, warnings: this.warnings };
  }
}

/** The output could not be understood; never guessed at. `raw` is redacted. */
export class ParseFailed extends DeviceOpError {
  override name = "ParseFailed";
  readonly kind = "ParseFailed" as const;
  readonly raw: string;
  constructor(init: OpErrorInit, raw: string) {
    super(init, false);
    this.raw = redact(raw);
  }
}
