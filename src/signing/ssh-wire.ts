// The SSH wire encoding (RFC 4251 §5) that public keys and SSH signatures are made of: uint32 big-endian lengths
// before byte strings, mpints for ECDSA's r and s. A reader that refuses to run past the end, so a truncated or
// padded blob is an error rather than a guess.

export class SshFormatError extends Error {
  override name = "SshFormatError";
}

export class SshReader {
  #offset = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.#offset === this.buf.length;
  }

  byte(): number {
    if (this.#offset + 1 > this.buf.length) throw new SshFormatError("truncated (byte)");
    return this.buf[this.#offset++]!;
  }

  uint32(): number {
    if (this.#offset + 4 > this.buf.length) throw new SshFormatError("truncated (uint32)");
    const v = this.buf.readUInt32BE(this.#offset);
    this.#offset += 4;
    return v;
  }

  bytes(n: number): Buffer {
    if (this.#offset + n > this.buf.length) throw new SshFormatError("truncated (bytes)");
    const out = this.buf.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  string(): Buffer {
    return this.bytes(this.uint32());
  }

  text(): string {
    return this.string().toString("utf8");
  }

  /** The rest must be empty: trailing bytes mean the blob is not what it claims. */
  end(what: string): void {
    if (!this.done) throw new SshFormatError(`${what}: ${this.buf.length - this.#offset} trailing bytes`);
  }
}

export function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

export function sshUint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** An mpint as a fixed-width unsigned big-endian integer (ECDSA r or s), refusing one that does not fit. */
export function mpintToFixed(mpint: Buffer, width: number): Buffer {
  let v = mpint;
  if (v.length > 0 && (v[0]! & 0x80) !== 0) throw new SshFormatError("negative mpint");
  while (v.length > 0 && v[0] === 0) v = v.subarray(1);
  if (v.length > width) throw new SshFormatError(`mpint wider than ${width} bytes`);
  return Buffer.concat([Buffer.alloc(width - v.length), v]);
}
