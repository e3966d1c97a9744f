/**
 * postern_recipients_final_total{result}: recipients that reached a final state. The queue counts those it settles;
 * delivery counts the recipients of direct jobs it settles itself (every recipient delivered on the first attempt,
 * docs/architecture.md "The lean path"), so a recipient is counted once, by whichever process settled it.
 */
import { Counter, type Registry } from 'prom-client';

export function recipientsFinalCounter(registers: Registry[]): Counter<'result'> {
  return new Counter({
    name: 'postern_recipients_final_total',
    help: 'Recipients that reached a final state.',
    labelNames: ['result'],
    registers,
  });
}
