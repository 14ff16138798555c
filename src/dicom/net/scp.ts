import net from 'node:net';
import { AppError } from '../../core/errors.ts';
import { COMMAND, type Command, CommandError, encodeResponse, parseCommand, STATUS } from './dimse.ts';
import { datasetEncoding, readDatasetIdentity, TS } from './identity.ts';
import { buildPart10, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './part10.ts';
import {
  ABORT_REASON,
  APPLICATION_CONTEXT_NAME,
  type AssociateRq,
  type ContextResult,
  encodeAbort,
  encodeAssociateAc,
  encodeAssociateRj,
  encodePDataTf,
  encodeReleaseRp,
  parseAssociateRq,
  parsePDataTf,
  PDU_ABORT,
  PDU_ASSOCIATE_AC,
  PDU_ASSOCIATE_RJ,
  PDU_ASSOCIATE_RQ,
  PDU_DATA_TF,
  PDU_RELEASE_RP,
  PDU_RELEASE_RQ,
  PduError,
} from './pdu.ts';

// A DICOM C-STORE SCP (PS3.4 Annex B, PS3.7, PS3.8): accepts associations addressed to its AE title,
// answers C-ECHO, and hands every received instance to `onInstance` as a Part 10 file built around the
// received data set bytes. The C-STORE-RSP is sent only after `onInstance` settles, and says success
// only when it resolved: a sender never hears "stored" for an instance that was not.
//
// One association is served strictly in order: while `onInstance` runs the socket is paused, so a fast
// sender cannot queue more than one PDU in memory. Memory per association is bounded by maxInstanceBytes
// (the data set being received) plus one PDU.

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/** Image storage SOP classes (PS3.4 Table B.5-1) that an SCP restricted to images accepts. */
export const IMAGE_STORAGE_SOP_CLASSES: readonly string[] = [
  '1.2.840.10008.5.1.4.1.1.1', // Computed Radiography
  '1.2.840.10008.5.1.4.1.1.1.1', // Digital X-Ray, for presentation
  '1.2.840.10008.5.1.4.1.1.1.1.1', // Digital X-Ray, for processing
  '1.2.840.10008.5.1.4.1.1.1.2', // Digital Mammography X-Ray, for presentation
  '1.2.840.10008.5.1.4.1.1.1.2.1', // Digital Mammography X-Ray, for processing
  '1.2.840.10008.5.1.4.1.1.1.3', // Digital Intra-Oral X-Ray, for presentation
  '1.2.840.10008.5.1.4.1.1.2', // CT
  '1.2.840.10008.5.1.4.1.1.2.1', // Enhanced CT
  '1.2.840.10008.5.1.4.1.1.2.2', // Legacy Converted Enhanced CT
  '1.2.840.10008.5.1.4.1.1.3.1', // Ultrasound Multi-frame
  '1.2.840.10008.5.1.4.1.1.4', // MR
  '1.2.840.10008.5.1.4.1.1.4.1', // Enhanced MR
  '1.2.840.10008.5.1.4.1.1.4.3', // Enhanced MR Color
  '1.2.840.10008.5.1.4.1.1.4.4', // Legacy Converted Enhanced MR
  '1.2.840.10008.5.1.4.1.1.6.1', // Ultrasound
  '1.2.840.10008.5.1.4.1.1.6.2', // Enhanced US Volume
  '1.2.840.10008.5.1.4.1.1.7', // Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.1', // Multi-frame Single Bit Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.2', // Multi-frame Grayscale Byte Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.3', // Multi-frame Grayscale Word Secondary Capture
  '1.2.840.10008.5.1.4.1.1.7.4', // Multi-frame True Color Secondary Capture
  '1.2.840.10008.5.1.4.1.1.12.1', // X-Ray Angiographic
  '1.2.840.10008.5.1.4.1.1.12.2', // X-Ray Radiofluoroscopic
  '1.2.840.10008.5.1.4.1.1.13.1.3', // Breast Tomosynthesis
  '1.2.840.10008.5.1.4.1.1.20', // Nuclear Medicine
  '1.2.840.10008.5.1.4.1.1.77.1.1', // VL Endoscopic
  '1.2.840.10008.5.1.4.1.1.77.1.2', // VL Microscopic
  '1.2.840.10008.5.1.4.1.1.77.1.3', // VL Slide-Coordinates Microscopic
  '1.2.840.10008.5.1.4.1.1.77.1.4', // VL Photographic
  '1.2.840.10008.5.1.4.1.1.77.1.5.1', // Ophthalmic Photography 8 Bit
  '1.2.840.10008.5.1.4.1.1.77.1.6', // VL Whole Slide Microscopy
  '1.2.840.10008.5.1.4.1.1.128', // PET
  '1.2.840.10008.5.1.4.1.1.130', // Enhanced PET
];

/** Every storage SOP class of PS3.4 Table B.5-1 sits under this root (the other services do not). */
const STORAGE_SOP_CLASS_ROOT = '1.2.840.10008.5.1.4.1.1.';

/**
 * Transfer syntaxes accepted by default, in the order used when a sender proposes several in one
 * presentation context. A compressed syntax is preferred to an uncompressed one so that the instance
 * is stored as it was sent, then explicit VR to implicit VR because it keeps value representations.
 */
export const DEFAULT_TRANSFER_SYNTAXES: readonly string[] = [
  TS.jpeg2000Lossless,
  TS.jpeg2000,
  TS.jpegLsLossless,
  TS.jpegLsNearLossless,
  TS.jpegLosslessSv1,
  TS.jpegLossless,
  TS.jpegBaseline,
  TS.jpegExtended,
  TS.rleLossless,
  TS.deflatedExplicitLittle,
  TS.explicitLittle,
  TS.explicitBig,
  TS.implicitLittle,
];

export interface ReceivedInstance {
  /** A Part 10 file: File Meta Information, then the data set exactly as received. */
  bytes: Buffer;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  callingAeTitle: string;
  /** Address of the sender, for audit. */
  remoteAddress: string;
}

export interface ScpLog {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface StoreScpOptions {
  port: number;
  host: string;
  /** This SCP's AE title; an association addressed to any other called AE title is rejected. */
  aeTitle: string;
  /** When given, only these calling AE titles may associate. */
  acceptCallingAeTitles?: readonly string[];
  /**
   * Stores one instance. Resolve once it is stored durably; reject to make the sender see a failure:
   * an AppError that is not retryable is answered 0xC002 (refused, do not resend), anything else 0xA701
   * (out of resources, try again later).
   */
  onInstance(instance: ReceivedInstance): Promise<void>;
  /** Largest P-DATA-TF PDU this SCP receives (PS3.8 D.1); 4096..4194304, default 65536. */
  maxPduLength?: number;
  /** Largest data set accepted; a larger one is read and dropped, then answered 0xA700. */
  maxInstanceBytes: number;
  log: ScpLog;
  /** Storage SOP classes accepted: every one (default) or the listed ones. Verification is always accepted. */
  sopClasses?: 'any-storage' | readonly string[];
  /** Transfer syntaxes accepted, most preferred first (default DEFAULT_TRANSFER_SYNTAXES). */
  transferSyntaxes?: readonly string[];
  /** Associations served at once; more are rejected as transient (default 16). */
  maxAssociations?: number;
  /** Time allowed between connecting and the A-ASSOCIATE-RQ (PS3.8 ARTIM), default 30 s. */
  associationTimeoutMs?: number;
  /** An association idle for this long is aborted, default 5 min; never while onInstance runs. */
  idleTimeoutMs?: number;
}

export interface StoreScp {
  /** The port listened on (the one chosen by the system when `port` was 0). */
  port: number;
  /** Stops accepting, lets each instance being stored finish and be answered, then aborts what is left. */
  close(): Promise<void>;
}

/** PS3.5 Table 6.2-1: 1-16 characters of the default repertoire without backslash or control characters. */
function validAeTitle(ae: string): boolean {
  return ae.trim().length > 0 && ae.length <= 16 && /^[\x20-\x7e]+$/.test(ae) && !ae.includes('\\');
}

function isAccepted(sopClasses: 'any-storage' | ReadonlySet<string>, uid: string): boolean {
  if (uid === VERIFICATION_SOP_CLASS) return true;
  return sopClasses === 'any-storage' ? uid.startsWith(STORAGE_SOP_CLASS_ROOT) : sopClasses.has(uid);
}

/** Largest A-ASSOCIATE-RQ read: 128 presentation contexts with many transfer syntaxes fit easily. */
const MAX_ASSOCIATE_RQ = 256 * 1024;
/** Largest DIMSE command set read; a C-STORE-RQ is about 200 bytes. */
const MAX_COMMAND_BYTES = 64 * 1024;

interface ResolvedOptions {
  aeTitle: string;
  callingAllowed: ReadonlySet<string> | undefined;
  onInstance: StoreScpOptions['onInstance'];
  maxPduLength: number;
  maxInstanceBytes: number;
  log: ScpLog;
  sopClasses: 'any-storage' | ReadonlySet<string>;
  transferSyntaxes: readonly string[];
  maxAssociations: number;
  associationTimeoutMs: number;
  idleTimeoutMs: number;
}

function resolveOptions(o: StoreScpOptions): ResolvedOptions {
  const fail = (message: string): never => {
    throw new AppError('CONFIG_INVALID', `DICOM storage SCP: ${message}`);
  };
  if (!validAeTitle(o.aeTitle)) fail(`AE title ${JSON.stringify(o.aeTitle)} must be 1-16 printable ASCII characters without backslash.`);
  for (const ae of o.acceptCallingAeTitles ?? []) if (!validAeTitle(ae)) fail(`calling AE title ${JSON.stringify(ae)} must be 1-16 printable ASCII characters without backslash.`);
  const maxPduLength = o.maxPduLength ?? 65536;
  if (!Number.isInteger(maxPduLength) || maxPduLength < 4096 || maxPduLength > 4 * 1024 * 1024) fail(`maxPduLength ${maxPduLength} must be an integer from 4096 to 4194304.`);
  if (!Number.isInteger(o.maxInstanceBytes) || o.maxInstanceBytes < 1) fail(`maxInstanceBytes ${o.maxInstanceBytes} must be a positive integer.`);
  const transferSyntaxes = o.transferSyntaxes ?? DEFAULT_TRANSFER_SYNTAXES;
  for (const ts of transferSyntaxes) if (!datasetEncoding(ts)) fail(`transfer syntax ${ts} is not a standard one whose data set can be read.`);
  const maxAssociations = o.maxAssociations ?? 16;
  if (!Number.isInteger(maxAssociations) || maxAssociations < 1) fail(`maxAssociations ${maxAssociations} must be a positive integer.`);
  return {
    aeTitle: o.aeTitle.trim(),
    callingAllowed: o.acceptCallingAeTitles ? new Set(o.acceptCallingAeTitles.map((ae) => ae.trim())) : undefined,
    onInstance: o.onInstance,
    maxPduLength,
    maxInstanceBytes: o.maxInstanceBytes,
    log: o.log,
    sopClasses: o.sopClasses === undefined || o.sopClasses === 'any-storage' ? 'any-storage' : new Set(o.sopClasses),
    transferSyntaxes,
    maxAssociations,
    associationTimeoutMs: o.associationTimeoutMs ?? 30_000,
    idleTimeoutMs: o.idleTimeoutMs ?? 5 * 60_000,
  };
}

export async function startStoreScp(options: StoreScpOptions): Promise<StoreScp> {
  const opts = resolveOptions(options);
  const associations = new Set<Association>();
  let closing = false;
  const server = net.createServer((socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    const association = new Association(socket, opts, () => [...associations].filter((a) => a.isAssociated()).length);
    associations.add(association);
    socket.once('close', () => associations.delete(association));
  });
  // Connections that never associate still hold a socket; bound them too.
  server.maxConnections = opts.maxAssociations * 2 + 4;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port, host: options.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => opts.log.warn({ err: e.message }, 'DICOM storage SCP listener error'));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  opts.log.info({ host: options.host, port, aeTitle: opts.aeTitle }, 'DICOM storage SCP listening');
  return {
    port,
    async close() {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...associations].map((a) => a.shutdown()));
      await stopped;
    },
  };
}

interface AcceptedContext {
  abstractSyntax: string;
  transferSyntax: string;
}

type MessageState =
  | { phase: 'command'; contextId: number | undefined; chunks: Buffer[]; bytes: number }
  | { phase: 'data'; command: Command; contextId: number; chunks: Buffer[]; bytes: number; overflow: boolean };

const EMPTY_MESSAGE = (): MessageState => ({ phase: 'command', contextId: undefined, chunks: [], bytes: 0 });

/** One TCP connection: the association state machine of PS3.8 §9.2 for an acceptor, sequentially. */
class Association {
  private readonly socket: net.Socket;
  private readonly opts: ResolvedOptions;
  private readonly activeCount: () => number;
  private state: 'awaiting-rq' | 'associated' | 'ending' | 'closed' = 'awaiting-rq';
  private inbox: Buffer[] = [];
  private inboxBytes = 0;
  /** Bytes needed before the next step can run: a PDU header, then the whole PDU. */
  private needed = 6;
  private processing: Promise<void> | undefined;
  private contexts = new Map<number, AcceptedContext>();
  private peerMaxPdu = 0;
  private callingAeTitle = '';
  private message: MessageState = EMPTY_MESSAGE();
  private readonly remote: string;
  private stats = { stored: 0, failed: 0, bytes: 0 };

  constructor(socket: net.Socket, opts: ResolvedOptions, activeCount: () => number) {
    this.socket = socket;
    this.opts = opts;
    this.activeCount = activeCount;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.setTimeout(opts.associationTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.inbox.push(chunk);
      this.inboxBytes += chunk.length;
      this.pump();
    });
    socket.on('timeout', () => {
      if (this.processing) return;
      this.abort(ABORT_REASON.notSpecified, this.state === 'awaiting-rq' ? 'no A-ASSOCIATE-RQ in time' : 'association idle too long');
    });
    socket.on('error', (e) => {
      this.opts.log.warn({ remote: this.remote, err: e.message }, 'DICOM association socket error');
      socket.destroy();
    });
    socket.on('close', () => {
      const midInstance = this.message.phase === 'data';
      if (this.state !== 'closed' && this.state !== 'ending' && this.state !== 'awaiting-rq') {
        this.opts.log.warn({ remote: this.remote, callingAeTitle: this.callingAeTitle, ...this.stats, midInstance }, 'DICOM association closed without release');
      }
      this.state = 'closed';
    });
  }

  isAssociated(): boolean {
    return this.state === 'associated';
  }

  /** Waits for the message being handled to be answered, then aborts the association. */
  async shutdown(): Promise<void> {
    while (this.processing) await this.processing;
    if (this.state === 'closed') return;
    if (this.state === 'associated') this.abort(ABORT_REASON.notSpecified, 'storage SCP is shutting down');
    else this.socket.destroy();
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once('close', () => resolve());
    });
  }

  private pump(): void {
    if (this.processing || this.state === 'closed' || this.inboxBytes < this.needed) return;
    this.processing = this.drain()
      .catch((e: unknown) => {
        if (e instanceof PduError) this.abort(e.reason, e.message);
        else {
          this.opts.log.warn({ remote: this.remote, err: e instanceof Error ? e.message : String(e) }, 'DICOM association failed');
          this.abort(ABORT_REASON.notSpecified, 'internal error');
        }
      })
      .finally(() => {
        this.processing = undefined;
        this.pump();
      });
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.state === 'closed' || this.state === 'ending') {
        this.inbox = [];
        this.inboxBytes = 0;
        return;
      }
      const pdu = this.takePdu();
      if (!pdu) return;
      await this.handle(pdu.type, pdu.body);
    }
  }

  /** The next complete PDU in the inbox, or undefined while its bytes have not all arrived. */
  private takePdu(): { type: number; body: Buffer } | undefined {
    if (this.inboxBytes < 6) {
      this.needed = 6;
      return undefined;
    }
    if (this.inbox.length > 1) this.inbox = [Buffer.concat(this.inbox)];
    const buffer = this.inbox[0] as Buffer;
    const type = buffer.readUInt8(0);
    const length = buffer.readUInt32BE(2);
    const limit = type === PDU_ASSOCIATE_RQ ? MAX_ASSOCIATE_RQ : type === PDU_DATA_TF ? this.opts.maxPduLength : 1024;
    if (length > limit) throw new PduError(`PDU of type 0x${type.toString(16)} declares ${length} bytes, more than the ${limit} accepted`, ABORT_REASON.invalidPduParameterValue);
    if (buffer.length < 6 + length) {
      this.needed = 6 + length;
      return undefined;
    }
    const body = buffer.subarray(6, 6 + length);
    const rest = buffer.subarray(6 + length);
    this.inbox = rest.length > 0 ? [rest] : [];
    this.inboxBytes = rest.length;
    this.needed = 6;
    return { type, body };
  }

  private async handle(type: number, body: Buffer): Promise<void> {
    if (this.state === 'awaiting-rq') {
      if (type === PDU_ASSOCIATE_RQ) return this.onAssociateRq(body);
      if (type === PDU_ABORT) return this.end();
      throw new PduError(`PDU type 0x${type.toString(16)} before any A-ASSOCIATE-RQ`, ABORT_REASON.unexpectedPdu);
    }
    switch (type) {
      case PDU_DATA_TF:
        return this.onPData(body);
      case PDU_RELEASE_RQ:
        if (this.message.phase === 'data' || this.message.chunks.length > 0) {
          this.opts.log.warn({ remote: this.remote, callingAeTitle: this.callingAeTitle }, 'DICOM release requested in the middle of a message; the partial message is dropped');
        }
        this.opts.log.info({ remote: this.remote, callingAeTitle: this.callingAeTitle, ...this.stats }, 'DICOM association released');
        this.write([encodeReleaseRp()]);
        return this.end();
      case PDU_ABORT:
        this.opts.log.warn({ remote: this.remote, callingAeTitle: this.callingAeTitle, ...this.stats, midInstance: this.message.phase === 'data' }, 'DICOM association aborted by the sender');
        return this.end(true);
      case PDU_ASSOCIATE_RQ:
      case PDU_ASSOCIATE_AC:
      case PDU_ASSOCIATE_RJ:
      case PDU_RELEASE_RP:
        throw new PduError(`unexpected PDU type 0x${type.toString(16)} in an established association`, ABORT_REASON.unexpectedPdu);
      default:
        throw new PduError(`unrecognized PDU type 0x${type.toString(16)}`, ABORT_REASON.unrecognizedPdu);
    }
  }

  private onAssociateRq(body: Buffer): void {
    const rq = parseAssociateRq(body);
    this.callingAeTitle = rq.callingAeTitle;
    const base = { remote: this.remote, callingAeTitle: rq.callingAeTitle, calledAeTitle: rq.calledAeTitle };
    const reject = (result: number, source: number, reason: number, why: string): void => {
      this.opts.log.warn({ ...base, why }, 'DICOM association rejected');
      this.write([encodeAssociateRj(result, source, reason)]);
      this.end();
    };
    // PS3.8 Table 9-21 gives the source and reason codes used here.
    if ((rq.protocolVersion & 1) === 0) return reject(1, 2, 2, `protocol version 0x${rq.protocolVersion.toString(16)} not supported`);
    if (rq.applicationContext !== APPLICATION_CONTEXT_NAME) return reject(1, 1, 2, `application context ${String(rq.applicationContext)} not supported`);
    if (rq.calledAeTitle !== this.opts.aeTitle) return reject(1, 1, 7, 'called AE title not recognized');
    if (this.opts.callingAllowed && !this.opts.callingAllowed.has(rq.callingAeTitle)) return reject(1, 1, 3, 'calling AE title not recognized');
    if (this.activeCount() >= this.opts.maxAssociations) return reject(2, 3, 2, `already serving ${this.opts.maxAssociations} associations`);

    const results = rq.contexts.map((c) => this.negotiate(c));
    this.peerMaxPdu = rq.maxPduLength;
    this.state = 'associated';
    this.socket.setTimeout(this.opts.idleTimeoutMs);
    this.write([encodeAssociateAc(rq, results, { maxPduLength: this.opts.maxPduLength, implementationClassUid: IMPLEMENTATION_CLASS_UID, implementationVersionName: IMPLEMENTATION_VERSION_NAME })]);
    this.opts.log.info(
      { ...base, proposed: rq.contexts.length, accepted: results.filter((r) => r.result === 0).length, implementationVersionName: rq.implementationVersionName },
      'DICOM association accepted',
    );
  }

  private negotiate(context: AssociateRq['contexts'][number]): ContextResult {
    const fallback = context.transferSyntaxes[0] ?? TS.implicitLittle;
    if (!isAccepted(this.opts.sopClasses, context.abstractSyntax)) return { id: context.id, result: 3, transferSyntax: fallback };
    const chosen = this.opts.transferSyntaxes.find((ts) => context.transferSyntaxes.includes(ts));
    if (chosen === undefined) return { id: context.id, result: 4, transferSyntax: fallback };
    this.contexts.set(context.id, { abstractSyntax: context.abstractSyntax, transferSyntax: chosen });
    return { id: context.id, result: 0, transferSyntax: chosen };
  }

  private async onPData(body: Buffer): Promise<void> {
    for (const pdv of parsePDataTf(body)) {
      if (this.state !== 'associated') return;
      const context = this.contexts.get(pdv.contextId);
      if (!context) throw new PduError(`PDV on presentation context ${pdv.contextId}, which was not accepted`, ABORT_REASON.invalidPduParameterValue);
      const m = this.message;
      if (pdv.command) {
        if (m.phase !== 'command') throw new PduError('command fragment received while a data set was expected', ABORT_REASON.unexpectedPduParameter);
        if (m.contextId !== undefined && m.contextId !== pdv.contextId) throw new PduError('command fragments on different presentation contexts', ABORT_REASON.unexpectedPduParameter);
        m.contextId = pdv.contextId;
        m.chunks.push(pdv.data);
        m.bytes += pdv.data.length;
        if (m.bytes > MAX_COMMAND_BYTES) throw new PduError(`command set larger than ${MAX_COMMAND_BYTES} bytes`, ABORT_REASON.invalidPduParameterValue);
        if (!pdv.last) continue;
        let command: Command;
        try {
          command = parseCommand(Buffer.concat(m.chunks));
        } catch (e) {
          if (e instanceof CommandError) throw new PduError(`malformed DIMSE command: ${e.message}`, ABORT_REASON.invalidPduParameterValue);
          throw e;
        }
        if (command.hasDataSet) {
          this.message = { phase: 'data', command, contextId: pdv.contextId, chunks: [], bytes: 0, overflow: false };
        } else {
          this.message = EMPTY_MESSAGE();
          await this.dispatch(command, pdv.contextId, context, undefined);
        }
      } else {
        if (m.phase !== 'data') throw new PduError('data set fragment received without a command announcing it', ABORT_REASON.unexpectedPduParameter);
        if (m.contextId !== pdv.contextId) throw new PduError('data set fragment on another presentation context than its command', ABORT_REASON.unexpectedPduParameter);
        m.bytes += pdv.data.length;
        // Past the limit the rest is still read (the sender keeps sending) but not kept.
        if (m.bytes > this.opts.maxInstanceBytes) {
          m.overflow = true;
          m.chunks = [];
        } else {
          m.chunks.push(pdv.data);
        }
        if (!pdv.last) continue;
        this.message = EMPTY_MESSAGE();
        await this.dispatch(m.command, pdv.contextId, context, m);
      }
    }
  }

  private async dispatch(command: Command, contextId: number, context: AcceptedContext, data: { chunks: Buffer[]; bytes: number; overflow: boolean } | undefined): Promise<void> {
    switch (command.commandField) {
      case COMMAND.cEchoRq:
        return this.respond(contextId, {
          commandField: COMMAND.cEchoRsp,
          messageIdBeingRespondedTo: command.messageId,
          affectedSopClassUid: command.affectedSopClassUid ?? VERIFICATION_SOP_CLASS,
          status: context.abstractSyntax === VERIFICATION_SOP_CLASS ? STATUS.success : STATUS.sopClassNotSupported,
        });
      case COMMAND.cStoreRq:
        return this.store(command, contextId, context, data);
      case COMMAND.cCancelRq:
        return; // nothing to cancel: every request is answered before the next is read
      default:
        if ((command.commandField & 0x8000) !== 0) {
          this.opts.log.warn({ remote: this.remote, commandField: command.commandField }, 'DICOM response received by the storage SCP; ignored');
          return;
        }
        return this.respond(contextId, {
          commandField: command.commandField | 0x8000,
          messageIdBeingRespondedTo: command.messageId,
          affectedSopClassUid: command.affectedSopClassUid,
          status: STATUS.unrecognizedOperation,
          errorComment: 'Only C-ECHO and C-STORE are provided',
        });
    }
  }

  private async store(command: Command, contextId: number, context: AcceptedContext, data: { chunks: Buffer[]; bytes: number; overflow: boolean } | undefined): Promise<void> {
    const answer = (status: number, errorComment?: string): void => {
      if (status !== STATUS.success) {
        this.stats.failed++;
        this.opts.log.warn({ remote: this.remote, callingAeTitle: this.callingAeTitle, status: `0x${status.toString(16).padStart(4, '0')}`, bytes: data?.bytes, why: errorComment }, 'DICOM C-STORE failed');
      }
      this.respond(contextId, {
        commandField: COMMAND.cStoreRsp,
        messageIdBeingRespondedTo: command.messageId,
        affectedSopClassUid: command.affectedSopClassUid,
        affectedSopInstanceUid: command.affectedSopInstanceUid,
        status,
        errorComment,
      });
    };
    if (!data) return answer(STATUS.cannotUnderstand, 'C-STORE-RQ without a data set');
    if (data.overflow) return answer(STATUS.outOfResources, `Instance larger than ${this.opts.maxInstanceBytes} bytes`);
    if (context.abstractSyntax === VERIFICATION_SOP_CLASS || command.affectedSopClassUid !== context.abstractSyntax) {
      return answer(STATUS.sopClassNotSupported, 'SOP class is not the presentation context one');
    }
    const dataset = Buffer.concat(data.chunks);
    let identity;
    try {
      identity = readDatasetIdentity(dataset, context.transferSyntax);
    } catch (e) {
      return answer(STATUS.cannotUnderstand, e instanceof Error ? e.message : 'unreadable data set');
    }
    if (identity.sopClassUid !== command.affectedSopClassUid) return answer(STATUS.datasetDoesNotMatchSopClass, 'SOPClassUID differs from AffectedSOPClassUID');
    if (identity.sopInstanceUid !== command.affectedSopInstanceUid) return answer(STATUS.instanceUidMismatch, 'SOPInstanceUID differs from AffectedSOPInstanceUID');

    const bytes = buildPart10(dataset, {
      sopClassUid: identity.sopClassUid,
      sopInstanceUid: identity.sopInstanceUid,
      transferSyntaxUid: context.transferSyntax,
      sendingAeTitle: this.callingAeTitle,
      receivingAeTitle: this.opts.aeTitle,
    });
    // Nothing more is read while the instance is stored, and a slow store is not an idle association.
    this.socket.pause();
    this.socket.setTimeout(0);
    try {
      await this.opts.onInstance({ bytes, ...identity, transferSyntaxUid: context.transferSyntax, callingAeTitle: this.callingAeTitle, remoteAddress: this.socket.remoteAddress ?? '' });
    } catch (e) {
      const refused = e instanceof AppError && !e.retryable;
      const comment = e instanceof AppError ? `${e.code}: ${e.message}` : 'Storage failed; send the instance again later';
      return answer(refused ? STATUS.refused : STATUS.storeFailed, comment);
    } finally {
      if (this.state === 'associated') {
        this.socket.setTimeout(this.opts.idleTimeoutMs);
        this.socket.resume();
      }
    }
    this.stats.stored++;
    this.stats.bytes += dataset.length;
    answer(STATUS.success);
  }

  private respond(contextId: number, response: Parameters<typeof encodeResponse>[0]): void {
    if (this.state !== 'associated') return;
    this.write(encodePDataTf(contextId, true, encodeResponse(response), this.peerMaxPdu));
  }

  private write(pdus: Buffer[]): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    for (const p of pdus) this.socket.write(p);
  }

  private abort(reason: number, why: string): void {
    if (this.state === 'closed' || this.state === 'ending') return;
    this.opts.log.warn({ remote: this.remote, callingAeTitle: this.callingAeTitle, why, ...this.stats }, 'DICOM association aborted');
    this.write([encodeAbort(2, reason)]);
    this.end(true);
  }

  /** Ends the connection after what was written is sent; destroys it if the peer does not close. */
  private end(immediately = false): void {
    if (this.state === 'closed' || this.state === 'ending') return;
    this.state = 'ending';
    this.inbox = [];
    this.inboxBytes = 0;
    if (immediately && this.socket.writableLength === 0) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
}
