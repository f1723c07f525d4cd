import t from 'tap';
import { canonicalIp } from './net.js';

t.test('canonicalIp gives one text per address, whatever form a socket or config used', async (t) => {
  const cases: [string, string | null][] = [
    ['10.1.2.3', '10.1.2.3'],
    [' 10.1.2.3 ', '10.1.2.3'],
    ['[10.1.2.3]', '10.1.2.3'],
    ['10.1.2.3%eth0', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::FFFF:10.1.2.3', '10.1.2.3'],
    ['[::1]', '::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['010.1.2.3', null],
    ['10.1.2', null],
    ['', null],
    ['example.com', null],
  ];
  for (const [input, want] of cases) t.equal(canonicalIp(input), want, JSON.stringify(input));
});
