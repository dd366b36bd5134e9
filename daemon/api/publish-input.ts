// A first look at `dir` of POST /v1/publish before the publisher reads it: a path that does not exist, or
// a device, FIFO or socket (reading /dev/zero or a FIFO never ends) is a caller's error, not a 500.
import { stat } from 'node:fs/promises'
import { HeraldError } from '../errors.js'

export async function checkPublishInput (dir: string): Promise<void> {
  let st
  try {
    st = await stat(dir)
  } catch (err: any) {
    // the publisher's own codes (protocol/ingest.ts), so the answer is the same whichever check sees it first
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw new HeraldError('INPUT_NOT_FOUND', `${dir} does not exist`, { cause: err })
    if (err.code === 'EACCES') throw new HeraldError('INPUT_UNREADABLE', `the daemon may not read ${dir} (permission denied)`, { cause: err })
    throw err
  }
  if (!st.isDirectory() && !st.isFile()) {
    throw new HeraldError('INVALID_ARGUMENT', `${dir} is not a directory or a regular file (devices, FIFOs and sockets are not published)`)
  }
}
