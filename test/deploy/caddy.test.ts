// The deployment of compose.yaml, replayed on loopback: Debian's Caddy runs the repository's
// Caddyfile over HTTPS (internal CA) in front of replicas that each bind their own 127.0.0.x on
// one port, as containers do, found through a DNS name as Docker's DNS lists a scaled service.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaddyProxy } from '../helpers/caddy';
import { ServiceDns } from '../helpers/dns';
import { freePort, startServer, type ServerProcess } from '../helpers/process';
import { RedisServer } from '../helpers/redis';
import { TestClient } from '../helpers/ws';

const replicaId = (server: ServerProcess) => String(server.logs.find((line) => line.msg === 'chatter is ready')?.replica);

/** One person's current socket, and the ids that reached them on sockets before it. */
type Person = TestClient & { token: string; name: string; earlier: string[] };

test('behind Caddy: HTTPS, wss spread over replicas, failover with resume, scale-up without a restart', async (t) => {
  const redis = await RedisServer.start(t);
  const dns = await ServiceDns.start(t, 'app.chatter.test');
  const appPort = await freePort('127.0.0.2');
  const replicas = new Map<string, ServerProcess>();
  const addReplica = async (address: string) => {
    const server = await startServer({ host: address, port: appPort, env: { REDIS_URL: redis.url } });
    t.after(() => server.stop('SIGKILL'));
    replicas.set(replicaId(server), server);
    dns.addresses.push(address);
    return server;
  };
  await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map(addReplica));
  const caddy = await CaddyProxy.start(t, { name: dns.name, port: appPort, resolver: dns.address });

  await t.test('the page and the API over HTTPS, metrics kept inside', async () => {
    const page = await caddy.fetch('/');
    assert.equal(page.status, 200);
    assert.match(page.body, /<div id="app">/);
    assert.match(String(page.headers['content-security-policy']), /connect-src 'self'/, "the app's headers pass through");
    assert.match(String(page.headers['strict-transport-security']), /max-age=\d+/);
    assert.equal(page.headers.server, undefined);

    const script = /<script[^>]+src="([^"]+)"/.exec(page.body)![1]!;
    const asset = await caddy.fetch(script, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(asset.headers['content-encoding'], 'gzip');

    const redirect = await caddy.fetchHttp('/');
    assert.equal(redirect.status, 308);
    // Caddy 2.6 leaves a non-standard HTTPS port out of the redirect; in production it is 443.
    assert.match(String(redirect.headers.location), /^https:\/\/localhost(:\d+)?\/$/);

    const session = await caddy.fetch('/api/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'alice' }),
    });
    assert.equal(session.status, 200);
    const cookie = String(session.headers['set-cookie']);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Secure/, 'Secure: the app believes Caddy that the request came over HTTPS');
    const me = await caddy.fetch('/api/session', { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(JSON.parse(me.body).user.name, 'alice');
    assert.equal((await caddy.fetch('/api/rooms')).status, 200);

    assert.equal((await caddy.fetch('/metrics')).status, 404, 'the internet does not see /metrics');
    const [anyReplica] = replicas.values();
    assert.equal((await fetch(`${anyReplica!.url}/metrics`)).status, 200, 'the replica port still serves it');
  });

  // Nine people chatting through Caddy; `transcript` is every acked message in order.
  const people: Person[] = [];
  const transcript: string[] = [];
  const connect = async (name: string, token?: string): Promise<Person> => {
    const session = token ?? JSON.parse((await caddy.fetch('/api/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    })).body).token;
    return Object.assign(await TestClient.connect(caddy.wsUrl, session, caddy.wsOptions), { token: session, name, earlier: [] });
  };
  const say = async (person: Person, text: string) => {
    const ack = await person.say('general', text, `${person.name}-${transcript.length}`);
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    transcript.push(String(ack.id));
  };
  const received = (person: Person) => [...person.earlier, ...person.messages('general').map((m) => String(m.id))];
  /** Reconnects `person` through Caddy, resumes after the last id they saw and checks nothing is missing. */
  const resume = async (person: Person, again: Person, goneReplica: string) => {
    assert.notEqual(again.frames[0]!.replica, goneReplica, 'Caddy routed around the replica that went');
    const joined = await again.join('general', received(person).at(-1));
    assert.equal(joined.resumed, true);
    again.earlier = [...received(person), ...(joined.messages as Array<{ id: string }>).map((m) => m.id)];
    assert.deepEqual(again.earlier, transcript, `${person.name} has every message once, in order`);
    people[people.indexOf(person)] = again;
    person.close();
  };

  await t.test('wss through Caddy lands on every replica and is one chat', async () => {
    for (let i = 0; i < 9; i++) people.push(await connect(`user${i}`));
    const landed = new Set(people.map((p) => String(p.frames[0]!.replica)));
    assert.ok(landed.size > 1, `spread over replicas: ${[...landed].join(', ')}`);
    assert.deepEqual([...landed].filter((id) => !replicas.has(id)), [], 'welcome names a real replica');
    for (const person of people) await person.join('general');
    for (const person of people) await say(person, `hello from ${person.name}`);
    for (const person of people) {
      await person.seen((f) => f.type === 'message' && f.id === transcript.at(-1));
      assert.deepEqual(received(person), transcript);
    }
  });

  await t.test('a replica killed: its clients reconnect through Caddy to the others and miss nothing', async () => {
    const onReplica = (id: string) => people.filter((p) => p.frames[0]!.replica === id);
    const [victimId] = [...replicas.keys()].sort((a, b) => onReplica(b).length - onReplica(a).length);
    const victims = onReplica(victimId!);
    const survivors = people.filter((p) => !victims.includes(p));
    assert.ok(victims.length > 0 && survivors.length > 0);

    await replicas.get(victimId!)!.stop('SIGKILL'); // still listed in DNS, as a crashed container is
    for (const victim of victims) await victim.closed;
    // The others keep talking while the victims are away.
    for (let i = 0; i < 10; i++) await say(survivors[i % survivors.length]!, `while you were away ${i}`);

    for (const victim of victims) await resume(victim, await connect(victim.name, victim.token), victimId!);
  });

  await t.test('a replica drained (SIGTERM, as docker stop does): its clients move over with 1012 and resume', async () => {
    const live = [...replicas.entries()].filter(([, server]) => server.child.exitCode === null && server.child.signalCode === null);
    const [drainedId, drained] = live.find(([id]) => people.some((p) => p.frames[0]!.replica === id))!;
    const leaving = people.filter((p) => p.frames[0]!.replica === drainedId);
    drained.child.kill('SIGTERM');
    for (const person of leaving) assert.equal((await person.closed).code, 1012);
    await say(people.find((p) => !leaving.includes(p))!, 'during the drain');

    for (const person of leaving) {
      // As the client's backoff does: a draining replica may still answer 503 to a first attempt.
      let again: Person | undefined;
      for (let attempt = 0; attempt < 20 && !again; attempt++) {
        again = await connect(person.name, person.token).catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 250));
          return undefined;
        });
      }
      assert.ok(again, `${person.name} reconnected`);
      await resume(person, again, drainedId);
    }
    assert.equal(await drained.exited, 0);
  });

  await t.test('a replica added is given new connections without restarting Caddy', async () => {
    const added = await addReplica('127.0.0.5');
    const addedId = replicaId(added);
    // Bounded: Caddy looks the name up again every 2 s; least_conn then prefers the empty replica.
    let newcomer: Person | undefined;
    for (let attempt = 0; attempt < 40 && !newcomer; attempt++) {
      const person = await connect(`late${attempt}`);
      if (person.frames[0]!.replica === addedId) newcomer = person;
      else {
        person.close();
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    assert.ok(newcomer, `no connection reached ${addedId}`);
    await newcomer.join('general');
    await say(newcomer, 'hello from the new replica');
    for (const person of people) {
      const message = await person.seen((f) => f.type === 'message' && f.id === transcript.at(-1));
      assert.equal(message.text, 'hello from the new replica');
    }
    for (const person of [...people, newcomer]) person.close();
  });
});
