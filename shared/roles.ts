export const ROLES = ['host', 'remixer', 'listener'] as const;
export type Role = (typeof ROLES)[number];

/** Roles that may change the mix and the arrangement. */
export function canRemix(role: Role): boolean {
  return role === 'host' || role === 'remixer';
}
