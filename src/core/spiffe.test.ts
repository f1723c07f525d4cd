import t from 'tap';
import { formatIdentity, parseIdentity, peerIdentityFromSanText, principalOf, uriSansFromNodeText } from './spiffe.js';

t.test('a well-formed SPIFFE URI parses and formats back unchanged', async (t) => {
  const uri = 'spiffe://cluster.local/ns/shop/sa/frontend';
  const id = parseIdentity(uri);
  t.same(id, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'frontend' });
  t.equal(formatIdentity(id!), uri);
  t.equal(principalOf(id!), 'cluster.local/ns/shop/sa/frontend');
});

const bad: [string, string][] = [
  ['no spiffe scheme', 'https://cluster.local/ns/a/sa/b'],
  ['too few segments', 'spiffe://cluster.local/ns/a'],
  ['too many segments', 'spiffe://cluster.local/ns/a/sa/b/c'],
  ['wrong keyword for namespace', 'spiffe://cluster.local/namespace/a/sa/b'],
  ['wrong keyword for service account', 'spiffe://cluster.local/ns/a/serviceaccount/b'],
  ['empty namespace', 'spiffe://cluster.local/ns//sa/b'],
  ['empty service account', 'spiffe://cluster.local/ns/a/sa/'],
];
for (const [name, uri] of bad) {
  t.test(`rejects an identity with ${name}`, async (t) => t.equal(parseIdentity(uri), null));
}

t.test('Node SAN text: quoted entries with commas are not split, DNS SANs ignored', async (t) => {
  t.same(uriSansFromNodeText('DNS:a.example, URI:spiffe://td/ns/a/sa/b'), ['spiffe://td/ns/a/sa/b']);
  t.same(uriSansFromNodeText('URI:"spiffe://td/ns/a,b/sa/c", URI:spiffe://td/ns/x/sa/y'), ['spiffe://td/ns/a,b/sa/c', 'spiffe://td/ns/x/sa/y']);
  t.same(peerIdentityFromSanText('URI:https://not-spiffe, URI:spiffe://td/ns/x/sa/y'), { trustDomain: 'td', namespace: 'x', serviceAccount: 'y' });
  t.equal(peerIdentityFromSanText(undefined), null);
});
