import { AppError } from '../core/errors.ts';
import { startStoreScp, type ScpLog, type StoreScp } from '../dicom/net/index.ts';
import type { Platform } from '../platform.ts';

/**
 * The DICOM C-STORE SCP of `dxflow serve`: every instance a modality or PACS sends is de-identified and
 * stored before the sender hears success (the SCP answers only after onInstance resolves); instances
 * that may carry burned-in text are refused (0xC002) and nothing of them is kept.
 */
export async function startDicomScp(platform: Platform, log: ScpLog): Promise<StoreScp> {
  const { config } = platform;
  return startStoreScp({
    port: config.dicom.scpPort,
    host: config.host,
    aeTitle: config.dicom.aeTitle,
    maxInstanceBytes: config.limits.maxBytes,
    log,
    async onInstance(instance) {
      const outcome = await platform.dicom.store(instance.bytes);
      if (outcome.status === 'quarantined') throw new AppError('DICOM_QUARANTINED', `The instance was not accepted: ${outcome.reason}`);
    },
  });
}
