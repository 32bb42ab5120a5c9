// Reading a file from a folder granted to the plugin, and appending to one
// in a folder granted read-write, through wasi:filesystem (JavaScript in a
// component has no `fs` module). Only a plugin that imports this module
// imports wasi:filesystem/preopens; its world must include it (see
// ../wit/world.wit; a project made by `ferry plugin new` says
// `"files": true` in its package.json).

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

export class FileError extends Error {}

function reason(e) {
  const code = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  if (code && typeof code === 'object' && 'tag' in code) {
    // A stream error: `closed`, or `last-operation-failed` with an error.
    if (code.val && typeof code.val.toDebugString === 'function') return code.val.toDebugString();
    return code.tag === 'closed' ? 'the file is closed' : String(code.tag);
  }
  const text = {
    'no-entry': 'No such file or directory',
    access: 'Permission denied',
    'not-permitted': 'Operation not permitted',
    'is-directory': 'Is a directory',
  }[code];
  return text ?? String(code);
}

/** The granted folder holding guest path `path`, and the path inside it. */
function preopened(path) {
  let best = null;
  for (const [dir, guest] of getDirectories()) {
    const prefix = guest.endsWith('/') ? guest : `${guest}/`;
    if (path.startsWith(prefix) && (best === null || prefix.length > best[1].length)) best = [dir, prefix];
  }
  if (best === null) throw new FileError('No such file or directory');
  const [dir, prefix] = best;
  return [dir, path.slice(prefix.length)];
}

/** The bytes of the file at guest path `path` (such as `/ref/regions.csv`). */
export function readFile(path) {
  const [dir, inside] = preopened(path);
  let fd;
  try {
    fd = dir.openAt({ symlinkFollow: true }, inside, {}, { read: true });
  } catch (e) {
    throw new FileError(reason(e));
  }
  const chunks = [];
  let size = 0;
  try {
    for (;;) {
      const [data, eof] = fd.read(1048576n, BigInt(size));
      chunks.push(data);
      size += data.length;
      if (eof || data.length === 0) break;
    }
  } catch (e) {
    throw new FileError(reason(e));
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The UTF-8 text of the file at guest path `path`. */
export function readText(path) {
  const bytes = readFile(path);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FileError('stream did not contain valid UTF-8');
  }
}

const encoder = new TextEncoder();

/** A file at guest path `path` opened for appending (created if it does not
 * exist), in a folder granted read-write: `append(data)` writes a string (as
 * UTF-8) or a Uint8Array at its end, `sync()` makes what was written durable.
 * Failures throw `FileError`. */
export class AppendFile {
  constructor(path) {
    const [dir, inside] = preopened(path);
    try {
      this.fd = dir.openAt({ symlinkFollow: true }, inside, { create: true }, { write: true });
      this.stream = this.fd.appendViaStream();
    } catch (e) {
      throw new FileError(reason(e));
    }
  }
  append(data) {
    const bytes = typeof data === 'string' ? encoder.encode(data) : data;
    try {
      // A blocking write takes at most 4096 bytes.
      for (let at = 0; at < bytes.length; at += 4096) this.stream.blockingWriteAndFlush(bytes.subarray(at, at + 4096));
    } catch (e) {
      throw new FileError(reason(e));
    }
  }
  sync() {
    try {
      this.fd.syncData();
    } catch (e) {
      throw new FileError(reason(e));
    }
  }
}
