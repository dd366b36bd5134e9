// Errors of the wire protocols. A peer's malformed bytes raise MalformedMessageError: the stream is
// aborted and the peer is counted as misbehaving; the process carries on.

export class MalformedMessageError extends Error {
  static name = 'MalformedMessageError'
  readonly code = 'MALFORMED_MESSAGE'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'MalformedMessageError'
  }
}

export class ProtocolStatusError extends Error {
  static name = 'ProtocolStatusError'
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
    this.name = 'ProtocolStatusError'
  }
}

/** Bad bytes from the peer: a frame that does not decode, or a length prefix over what the protocol allows. */
export function isPeerFault (err: any): boolean {
  return err instanceof MalformedMessageError || err?.name === 'InvalidDataLengthError' || err?.name === 'InvalidDataLengthLengthError' || err?.name === 'InvalidMessageLengthError'
}
