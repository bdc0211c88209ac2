// Two people chatting in real Chromium against the built server.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { SCREENSHOTS, launchChromium } from '../helpers/browser';
import { startServer } from '../helpers/process';
import { RedisServer } from '../helpers/redis';

const XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';

async function signIn(context: BrowserContext, url: string, name: string, problems: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    // The 401 of the first session probe is expected; a CSP refusal or script error is not.
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) problems.push(`${name}: ${msg.text()}`);
  });
  await page.goto(url);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Start chatting' }).click();
  await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
  return page;
}

const log = (page: Page) => page.getByRole('log');

test('two people chat in one room, history survives a reload, and markup stays text', async (t) => {
  const server = await startServer();
  t.after(() => server.stop('SIGKILL'));
  const browser = await launchChromium();
  t.after(() => browser.close());
  const problems: string[] = [];

  const aliceContext = await browser.newContext();
  const bobContext = await browser.newContext({ viewport: { width: 390, height: 760 } });
  const alice = await signIn(aliceContext, server.url, 'alice', problems);
  const bob = await signIn(bobContext, server.url, 'bob', problems);

  // Both start in #general and see each other.
  await alice.getByText('2 people here').waitFor();
  await bob.getByText('2 people here').waitFor();

  // Typing shows for the other person only.
  await bob.getByLabel('Message #general').fill('still typ');
  await alice.getByText('bob is typing…').waitFor();

  await alice.getByLabel('Message #general').fill('hello from alice');
  await alice.keyboard.press('Enter');
  await log(bob).getByText('hello from alice').waitFor();
  await log(alice).getByText('hello from alice').waitFor();
  assert.equal(await log(alice).locator('.pending').count(), 0, 'acknowledged, no longer pending');

  await bob.getByLabel('Message #general').fill(XSS);
  await bob.getByRole('button', { name: 'Send' }).click();
  await log(alice).getByText(XSS).waitFor();
  assert.equal(await log(alice).locator('img, script').count(), 0, 'no element was made from the text');
  assert.equal(await alice.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);

  // A reload remembers the name (cookie) and shows the history.
  await alice.reload();
  await alice.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
  await log(alice).getByText('hello from alice').waitFor();
  await log(alice).getByText(XSS).waitFor();
  assert.equal(await alice.getByLabel('Your name').count(), 0, 'no name prompt after a reload');

  // Own messages are marked as such.
  assert.equal(await log(alice).locator('.group.own').filter({ hasText: 'hello from alice' }).count(), 1);
  assert.equal(await log(alice).locator('.group.own').filter({ hasText: XSS }).count(), 0);

  // A second room: creating it, and its unread count for the other person.
  await alice.getByLabel('Join or create a room').fill('random');
  await alice.getByRole('button', { name: 'Join', exact: true }).click();
  await alice.getByRole('heading', { name: '#random' }).waitFor();
  await bob.getByRole('button', { name: 'Rooms' }).click();
  await bob.getByLabel('Join or create a room').fill('random');
  await bob.getByRole('button', { name: 'Join', exact: true }).click();
  await bob.getByRole('heading', { name: '#random' }).waitFor();
  await bob.getByRole('button', { name: 'Rooms' }).click();
  await bob.getByRole('button', { name: /^#general/ }).click();
  await alice.getByLabel('Message #random').fill('over here');
  await alice.keyboard.press('Enter');
  await bob.getByRole('button', { name: 'Rooms' }).click();
  await bob.getByLabel('1 unread').waitFor();

  await alice.screenshot({ path: join(SCREENSHOTS, 'chat-alice.png') });
  await bob.screenshot({ path: join(SCREENSHOTS, 'chat-bob-phone.png') });
  assert.deepEqual([...problems], [], 'no script errors or CSP violations in either page');
});

test('the page reconnects by itself, resumes, and sends what was written while offline exactly once', async (t) => {
  const redis = await RedisServer.start(t);
  const env = { REDIS_URL: redis.url };
  let server = await startServer({ env });
  const port = Number(new URL(server.url).port);
  t.after(() => server.stop('SIGKILL'));
  const browser = await launchChromium();
  t.after(() => browser.close());
  const problems: string[] = [];
  const page = await signIn(await browser.newContext(), server.url, 'alice', problems);

  await page.getByLabel('Message #general').fill('before the crash');
  await page.keyboard.press('Enter');
  await log(page).getByText('before the crash').waitFor();

  await server.stop('SIGKILL');
  await page.getByRole('status').filter({ hasText: 'Offline' }).waitFor();
  await page.getByLabel('Message #general').fill('written while offline');
  await page.keyboard.press('Enter');
  await log(page).locator('.pending').getByText('written while offline').waitFor();
  await page.screenshot({ path: join(SCREENSHOTS, 'offline.png') });

  // The replica comes back on the same address (as a restarted container would).
  server = await startServer({ env, port });
  await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor({ timeout: 20_000 });
  await log(page).locator('.group').getByText('written while offline').waitFor();
  assert.equal(await log(page).locator('.pending').count(), 0, 'nothing left pending');
  assert.equal(await log(page).getByText('written while offline').count(), 1, 'shown once');
  assert.equal(await log(page).getByText('before the crash').count(), 1, 'resumed, not repeated');

  // The server stored it exactly once.
  const other = await signIn(await browser.newContext(), server.url, 'bob', problems);
  await log(other).getByText('written while offline').waitFor();
  assert.equal(await log(other).getByText('written while offline').count(), 1);
  assert.deepEqual(problems.filter((p) => !/ERR_CONNECTION_(REFUSED|RESET)|WebSocket connection/.test(p)), []);
});
