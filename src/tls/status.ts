// Status and warnings for managed certificates (used by `tls status` and `doctor`).
import { daysLeft, listManaged, type ManagedCert } from './store.ts';

export const WARN_DAYS = 14;

export interface CertStatus {
  primary: string;
  names: string[];
  issuer: string | null;
  notAfter: string | null;
  daysLeft: number | null;
  keyMatch: boolean;
  directory: string | null;
  problem: string | null;
}

export function toStatus(c: ManagedCert, now = new Date()): CertStatus {
  return {
    primary: c.primary,
    names: c.info?.names ?? c.meta?.domains ?? [],
    issuer: c.info?.issuer ?? c.meta?.issuer ?? null,
    notAfter: c.info?.notAfter.toISOString() ?? null,
    daysLeft: c.info ? daysLeft(c.info.notAfter, now) : null,
    keyMatch: c.keyMatch,
    directory: c.meta?.directory ?? null,
    problem: c.error,
  };
}

export async function certificateStatus(certsDir: string, now = new Date()): Promise<CertStatus[]> {
  return (await listManaged(certsDir)).map((c) => toStatus(c, now));
}

export interface CertificateWarning {
  primary: string;
  code: 'expiring' | 'expired' | 'key-mismatch' | 'unreadable';
  message: string;
}

/**
 * Problems worth a `doctor` line: certificates expiring within 14 days (or expired),
 * certificate/key mismatch, unreadable files. Empty when certsDir does not exist.
 */
export async function certificateWarnings(certsDir: string, now = new Date()): Promise<CertificateWarning[]> {
  const out: CertificateWarning[] = [];
  for (const c of await listManaged(certsDir)) {
    if (!c.info) {
      out.push({ primary: c.primary, code: 'unreadable', message: `${c.primary}: ${c.error ?? 'certificate unreadable'}` });
      continue;
    }
    const left = daysLeft(c.info.notAfter, now);
    if (c.info.notAfter.getTime() <= now.getTime())
      out.push({ primary: c.primary, code: 'expired', message: `${c.primary}: certificate expired on ${c.info.notAfter.toISOString()}` });
    else if (left < WARN_DAYS)
      out.push({ primary: c.primary, code: 'expiring', message: `${c.primary}: certificate expires in ${left} days (${c.info.notAfter.toISOString()}); run gatewayctl tls renew` });
    if (!c.keyMatch)
      out.push({ primary: c.primary, code: 'key-mismatch', message: `${c.primary}: privkey.pem does not match fullchain.pem` });
  }
  return out;
}
