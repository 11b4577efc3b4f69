import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MemoryStore } from '../src/adapter.js';

const setup = () => {
  let now = 1_000_000;
  const store = new MemoryStore({ now: () => now });
  const Adapter = store.adapterClass();
  return { store, Adapter, advance: (seconds) => { now += seconds * 1000; } };
};

describe('the in-memory adapter', () => {
  it('forgets an entry once its TTL has passed', async () => {
    const { Adapter, advance } = setup();
    const tokens = new Adapter('AccessToken');
    await tokens.upsert('a', { jti: 'a' }, 10);
    assert.deepEqual(await tokens.find('a'), { jti: 'a' });
    advance(10);
    assert.equal(await tokens.find('a'), undefined);
  });

  it('keeps models apart and outlives the adapter instance (a rebuilt Provider sees it)', async () => {
    const { Adapter } = setup();
    await new Adapter('Session').upsert('s', { uid: 'u1', accountId: 'x' }, 60);
    assert.equal(await new Adapter('Grant').find('s'), undefined);
    assert.equal((await new Adapter('Session').findByUid('u1')).accountId, 'x');
  });

  it('marks a consumed entry and revokes everything of a grant', async () => {
    const { Adapter } = setup();
    const refresh = new Adapter('RefreshToken');
    const access = new Adapter('AccessToken');
    await refresh.upsert('r', { grantId: 'g' }, 60);
    await access.upsert('t', { grantId: 'g' }, 60);
    await access.upsert('other', { grantId: 'h' }, 60);
    await refresh.consume('r');
    assert.equal(typeof (await refresh.find('r')).consumed, 'number');
    await refresh.revokeByGrantId('g');
    assert.equal(await refresh.find('r'), undefined);
    assert.equal(await access.find('t'), undefined);
    assert.ok(await access.find('other'));
  });
});
