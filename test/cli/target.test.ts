import t from 'tap';
import { explain } from '../../src/cli/commands/explain.js';
import { parseTarget, targetText } from '../../src/util/target.js';

t.test('URLs take the port from the scheme', async (t) => {
  t.match(parseTarget('https://Outlook.Office365.com/owa'), {
    host: 'outlook.office365.com',
    port: 443,
    proto: 'tcp',
  });
  t.match(parseTarget('http://intranet.contoso.test/'), {
    host: 'intranet.contoso.test',
    port: 80,
  });
  t.match(parseTarget('http://[2603:1006::1]:8080/'), {
    ip: '2603:1006::1',
    family: 6,
    port: 8080,
  });
});

t.test('host[:port], ip[:port], [v6]:port', async (t) => {
  t.match(parseTarget('x.sharepoint.com:80'), { host: 'x.sharepoint.com', port: 80 });
  t.match(parseTarget('40.96.0.1'), { ip: '40.96.0.1', family: 4, port: 443 });
  t.match(parseTarget('40.96.0.1:25', { udp: true }), { port: 25, proto: 'udp' });
  t.match(parseTarget('[::1]:53'), { ip: '::1', family: 6, port: 53 });
  t.match(parseTarget('2620:1ec:4::152'), { ip: '2620:1ec:4::152', port: 443 });
  t.match(parseTarget('example.test.'), { host: 'example.test' });
});

t.test('bad input gets a usage error naming it', async (t) => {
  for (const bad of [
    '',
    'a b',
    'host:99999',
    'host:x',
    '[::1',
    'gopher://x',
    'ex_ample..com',
    'https://',
    '999.1.1.1',
    '10.0.0.256:80',
    '1.2.3.4:0',
    'http://host:0/',
    '[zz]:80',
    '[10.0.0.1]:80',
  ]) {
    t.throws(() => parseTarget(bad), { code: 'GSA_ERR_USAGE' }, bad);
  }
});

t.test('udp:// and tcp:// name the protocol and need a port', async (t) => {
  t.match(parseTarget('udp://Outlook.Office365.com:443'), {
    host: 'outlook.office365.com',
    port: 443,
    proto: 'udp',
  });
  t.match(parseTarget('udp://10.1.2.3:3389', { udp: true }), { ip: '10.1.2.3', proto: 'udp' });
  t.match(parseTarget('tcp://10.1.2.3:3389'), { port: 3389, proto: 'tcp' });
  t.throws(() => parseTarget('udp://x.test'), { message: /give a port for scheme udp:/ });
  t.throws(() => parseTarget('tcp://x.test:1', { udp: true }), {
    code: 'GSA_ERR_USAGE',
    message: /tcp:\/\/ target cannot be asked for UDP/,
  });
});

t.test('targetText: an IPv6 address in brackets, as it is given', async (t) => {
  t.equal(targetText(parseTarget('[2001:db8::1]:443')), '[2001:db8::1]:443/tcp');
  t.equal(targetText(parseTarget('2620:1ec:4::152', { udp: true })), '[2620:1ec:4::152]:443/udp');
  t.equal(targetText(parseTarget('40.96.0.1:25')), '40.96.0.1:25/tcp');
  t.equal(
    targetText(parseTarget('https://Outlook.Office365.com/')),
    'outlook.office365.com:443/tcp',
  );
});

t.test('explain prints an IPv6 target in brackets', async (t) => {
  const e = explain(parseTarget('[2001:db8::1]:443'), {});
  t.equal(e.target, '[2001:db8::1]:443/tcp');
});
