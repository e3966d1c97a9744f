/** Free ports outside the ephemeral range (see services/local/ports.ts). */
export { freePort } from '../../services/local/ports.ts';
