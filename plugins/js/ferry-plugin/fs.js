// Reading a file from a folder granted to the plugin, through
// wasi:filesystem (JavaScript in a component has no `fs` module). Only a
// plugin that imports this module imports wasi:filesystem/preopens; its
// world must include it (see ../wit/world.wit).

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

export class FileError extends Error {}

function reason(e) {
  const code = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  const text = {
    'no-entry': 'No such file or directory',
    access: 'Permission denied',
    'not-permitted': 'Operation not permitted',
    'is-directory': 'Is a directory',
  }[code];
  return text ?? String(code);
}

/** The bytes of the file at guest path `path` (such as `/ref/regions.csv`). */
export function readFile(path) {
  let best = null;
  for (const [dir, guest] of getDirectories()) {
    const prefix = guest.endsWith('/') ? guest : `${guest}/`;
    if (path.startsWith(prefix) && (best === null || prefix.length > best[1].length)) best = [dir, prefix];
  }
  if (best === null) throw new FileError('No such file or directory');
  const [dir, prefix] = best;
  let fd;
  try {
    fd = dir.openAt({ symlinkFollow: true }, path.slice(prefix.length), {}, { read: true });
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
