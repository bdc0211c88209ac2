// Two people chatting in real Chromium against the built server.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { SCREENSHOTS, launchChromium } from '../helpers/browser';
import { startServer } from '../helpers/process';

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
