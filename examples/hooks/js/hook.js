// A typed wasmhook hook in JavaScript (world `js-hook`: wit/hook.wit's `hook` plus
// wasi:filesystem and wasi:clocks, see wit/js-hook.wit), built with componentize-js:
//   postStart: write "<container> postStart by js" to message.txt in the first volume;
//   preStop:   wait (args[1]: "8s" or "2.5", default 10 s) until a file `drained` is there.
// Test switches (args[1]): fail -> err, hog -> allocate 512 MiB, spin -> loop forever.
// A thrown *string* is the WIT `err(message)` (a thrown Error object would trap), so run()
// turns errors into strings; console.log/console.error go to the hook's output.
import { getDirectories } from "wasi:filesystem/preopens@0.2.12";
import { now, subscribeDuration } from "wasi:clocks/monotonic-clock@0.2.12";

export const handler = {
  run(ctx) {
    try { hook(ctx, ctx.args[1] ?? ""); }
    catch (e) { throw e instanceof Error ? `${e.name}: ${e.message}` : `${e?.payload ?? e}`; }
  },
};

function hook(ctx, arg) {
  if (arg === "fail") throw new Error("asked to fail");
  if (arg === "hog") console.log(`hogged ${new Uint8Array(512 << 20).fill(1).length >> 20} MiB`);
  while (arg === "spin");
  if (!ctx.volumes.length) throw new Error("no volume: the container needs a volumeMount");
  const vol = ctx.volumes[0].path, dir = getDirectories().find(([, p]) => p === vol)[0];
  if (ctx.kind === "post-start") {
    const f = dir.openAt({}, "message.txt", { create: true, truncate: true }, { write: true });
    f.write(new TextEncoder().encode(`${ctx.container} postStart by js\n`), 0n);
    const env = Object.fromEntries(ctx.env);
    return console.log(`wrote ${vol}/message.txt for ${ctx.namespace}/${ctx.pod}/${ctx.container} (GREETING=${env.GREETING})`);
  }
  const limit = parseFloat(arg || "10"), deadline = now() + BigInt(Math.round(limit * 1e9));
  for (;;) {
    try { return console.log(`${vol}/drained appeared (${dir.statAt({}, "drained").size} bytes)`); } catch {}
    if (now() > deadline) throw new Error(`${vol}/drained did not appear within ${limit}s`);
    subscribeDuration(100_000_000n).block(); // sleep 100 ms
  }
}
