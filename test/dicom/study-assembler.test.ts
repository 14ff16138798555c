import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AssembledInstance, createStudyAssembler, sha256Hex, type StudyCompletionInfo } from '../../src/dicom/net/study-assembler.ts';
import { FakeClock } from './net-clock.ts';

interface Instance {
  studyInstanceUid: string;
  sopInstanceUid: string;
  bytes?: Uint8Array;
  sha256?: string;
  note?: string;
}

interface Completion {
  study: string;
  sops: string[];
  instances: AssembledInstance<Instance>[];
  info: StudyCompletionInfo;
}

function setup(quietMs = 1000, onStudyComplete?: (study: string, instances: AssembledInstance<Instance>[], info: StudyCompletionInfo) => Promise<void> | void) {
  const clock = new FakeClock();
  const completions: Completion[] = [];
  const errors: [unknown, string][] = [];
  const assembler = createStudyAssembler<Instance>({
    quietMs,
    clock,
    onStudyComplete: async (study, instances, info) => {
      completions.push({ study, sops: instances.map((i) => i.sopInstanceUid), instances, info });
      await onStudyComplete?.(study, instances, info);
    },
    onError: (e, study) => errors.push([e, study]),
  });
  return { clock, completions, errors, assembler };
}

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

describe('study assembler', () => {
  test('groups by study and completes a study once nothing arrived for quietMs', async () => {
    const { clock, completions, assembler } = setup(1000);
    assembler.add({ studyInstanceUid: 'S1', sopInstanceUid: 'A', bytes: bytes('a') });
    clock.advance(400);
    assembler.add({ studyInstanceUid: 'S2', sopInstanceUid: 'X', bytes: bytes('x') });
    clock.advance(400);
    assembler.add({ studyInstanceUid: 'S1', sopInstanceUid: 'B', bytes: bytes('b') });
    // S1's quiet period restarted at t=800; S2's ends at t=1400.
    clock.advance(599);
    await assembler.whenIdle();
    assert.deepEqual(completions.map((c) => c.study), []);
    clock.advance(1);
    await assembler.whenIdle();
    assert.deepEqual(completions.map((c) => [c.study, c.sops]), [['S2', ['X']]]);
    clock.advance(399);
    await assembler.whenIdle();
    assert.equal(completions.length, 1, 'S1 is still receiving');
    clock.advance(1);
    await assembler.whenIdle();
    assert.deepEqual(completions.map((c) => [c.study, c.sops]), [['S2', ['X']], ['S1', ['A', 'B']]]);
    const s1 = completions[1] as Completion;
    assert.deepEqual(s1.info, { generation: 1, replaced: [], duplicates: 0, firstReceivedAt: 1_000_000, lastReceivedAt: 1_000_800 });
    assert.equal(s1.instances[0]?.sha256, sha256Hex(bytes('a')));
    assert.equal(s1.instances[1]?.receivedAt, 1_000_800);
    assert.deepEqual(assembler.pendingStudies(), []);
    assert.equal(clock.pendingTimers(), 0);
  });

  test('the same instance twice is counted once; the same SOPInstanceUID with other bytes replaces it and is reported', async () => {
    const { clock, completions, assembler } = setup(1000);
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', bytes: bytes('v1') }).outcome, 'added');
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'B', bytes: bytes('b') }).outcome, 'added');
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', bytes: bytes('v1') }).outcome, 'duplicate');
    const replaced = assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', bytes: bytes('v2'), note: 'newer' });
    assert.deepEqual(replaced, { outcome: 'replaced', sha256: sha256Hex(bytes('v2')) });
    clock.advance(1000);
    await assembler.whenIdle();
    assert.equal(completions.length, 1);
    const c = completions[0] as Completion;
    assert.deepEqual(c.sops, ['B', 'A']);
    assert.equal(c.instances.find((i) => i.sopInstanceUid === 'A')?.note, 'newer');
    assert.equal(c.info.duplicates, 1);
    assert.deepEqual(c.info.replaced, [{ sopInstanceUid: 'A', previousSha256: sha256Hex(bytes('v1')), sha256: sha256Hex(bytes('v2')) }]);
  });

  test('after completion: a resend is a duplicate and triggers nothing; a changed or new instance opens generation 2', async () => {
    const { clock, completions, assembler } = setup(500);
    assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', bytes: bytes('a') });
    assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'B', bytes: bytes('b') });
    clock.advance(500);
    await assembler.whenIdle();
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', bytes: bytes('a') }).outcome, 'duplicate');
    clock.advance(5000);
    await assembler.whenIdle();
    assert.equal(completions.length, 1, 'an identical resend does not re-run the study');
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'B', bytes: bytes('b-corrected') }).outcome, 'replaced');
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'C', bytes: bytes('c') }).outcome, 'added');
    clock.advance(500);
    await assembler.whenIdle();
    assert.equal(completions.length, 2);
    const second = completions[1] as Completion;
    assert.deepEqual(second.sops, ['B', 'C']);
    assert.equal(second.info.generation, 2);
    assert.deepEqual(second.info.replaced.map((r) => r.sopInstanceUid), ['B']);
  });

  test('an instance that moves to another study is taken out of the first and reported', async () => {
    const { clock, completions, assembler } = setup(100);
    assembler.add({ studyInstanceUid: 'S1', sopInstanceUid: 'A', sha256: 'aa' });
    assembler.add({ studyInstanceUid: 'S1', sopInstanceUid: 'B', sha256: 'bb' });
    assembler.add({ studyInstanceUid: 'S2', sopInstanceUid: 'A', sha256: 'aa' });
    clock.advance(100);
    await assembler.whenIdle();
    assert.deepEqual(completions.map((c) => [c.study, c.sops]), [['S1', ['B']], ['S2', ['A']]]);
    assert.deepEqual(completions[1]?.info.replaced, [{ sopInstanceUid: 'A', previousSha256: 'aa', sha256: 'aa', previousStudyInstanceUid: 'S1' }]);
  });

  test('a given sha256 is used as is, so the bytes need not be kept', async () => {
    const { assembler, completions } = setup(10);
    assert.deepEqual(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', sha256: 'f'.repeat(64) }), { outcome: 'added', sha256: 'f'.repeat(64) });
    assert.throws(() => assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'B' }), /bytes or their sha256/);
    assert.throws(() => assembler.add({ studyInstanceUid: '', sopInstanceUid: 'B', sha256: 'x' }), /StudyInstanceUID/);
    await assembler.flush();
    assert.equal(completions[0]?.instances[0]?.bytes, undefined);
  });

  test('flush() completes every pending study now; close() then refuses instances', async () => {
    const { clock, completions, assembler } = setup(60_000);
    assembler.add({ studyInstanceUid: 'S1', sopInstanceUid: 'A', sha256: '1' });
    assembler.add({ studyInstanceUid: 'S2', sopInstanceUid: 'B', sha256: '2' });
    await assembler.flush();
    assert.deepEqual(completions.map((c) => c.study).sort(), ['S1', 'S2']);
    assert.equal(clock.pendingTimers(), 0);
    assembler.add({ studyInstanceUid: 'S3', sopInstanceUid: 'C', sha256: '3' });
    await assembler.close();
    assert.equal(completions.length, 3);
    assert.throws(() => assembler.add({ studyInstanceUid: 'S4', sopInstanceUid: 'D', sha256: '4' }), /closed/);
  });

  test('a failed onStudyComplete is reported, and a resend of its instances triggers the study again', async () => {
    let fail = true;
    const { clock, completions, errors, assembler } = setup(100, () => {
      if (fail) throw new Error('database down');
    });
    assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', sha256: 'aa' });
    clock.advance(100);
    await assembler.whenIdle();
    assert.equal(errors.length, 1);
    assert.equal((errors[0]?.[0] as Error).message, 'database down');
    assert.equal(errors[0]?.[1], 'S');
    fail = false;
    assert.equal(assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', sha256: 'aa' }).outcome, 'added');
    clock.advance(100);
    await assembler.whenIdle();
    assert.equal(completions.length, 2);
    assert.equal(errors.length, 1);
  });

  test('batches of one study are handed on in order, even when the first is still being processed', async () => {
    const order: string[] = [];
    let releaseFirst: () => void = () => undefined;
    const firstDone = new Promise<void>((r) => {
      releaseFirst = r;
    });
    const { clock, assembler } = setup(100, async (_study, _instances, info) => {
      order.push(`start ${info.generation}`);
      if (info.generation === 1) await firstDone;
      order.push(`end ${info.generation}`);
    });
    assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'A', sha256: 'a' });
    clock.advance(100);
    assembler.add({ studyInstanceUid: 'S', sopInstanceUid: 'B', sha256: 'b' });
    clock.advance(100);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(order, ['start 1']);
    releaseFirst();
    await assembler.whenIdle();
    assert.deepEqual(order, ['start 1', 'end 1', 'start 2', 'end 2']);
  });

  test('works on the real clock', async () => {
    const done: string[] = [];
    const assembler = createStudyAssembler<Instance>({ quietMs: 30, onStudyComplete: (study) => void done.push(study) });
    assembler.add({ studyInstanceUid: 'R', sopInstanceUid: 'A', bytes: bytes('a') });
    await new Promise((r) => setTimeout(r, 80));
    await assembler.whenIdle();
    assert.deepEqual(done, ['R']);
  });
});
