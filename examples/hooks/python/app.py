# A typed wasmhook hook in Python (world `hook` of wit/hook.wit), built with componentize-py:
#   postStart: write "<container> postStart by python" to message.txt in the first volume;
#   preStop:   wait (args[1]: "8s" or "2.5", default 10 s) until a file `drained` is there.
# Test switches (args[1]): fail -> err, hog -> allocate 512 MiB, spin -> loop forever.
# Any exception becomes the WIT `err("<Type>: <message>")`; print() goes to the hook's output.
import os, time
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import HookKind

class Handler(exports.Handler):
    def run(self, ctx):
        try:
            hook(ctx, ctx.args[1] if len(ctx.args) > 1 else "")
        except Exception as e:
            raise Err(f"{type(e).__name__}: {e}")

def hook(ctx, arg):
    if arg == "fail": raise RuntimeError("asked to fail")
    if arg == "hog": print(f"hogged {len(bytearray(512 << 20)) >> 20} MiB")
    while arg == "spin": pass
    if not ctx.volumes: raise LookupError("no volume: the container needs a volumeMount")
    vol = ctx.volumes[0].path
    if ctx.kind == HookKind.POST_START:
        with open(f"{vol}/message.txt", "w") as f: f.write(f"{ctx.container} postStart by python\n")
        env = dict(ctx.env)
        return print(f"wrote {vol}/message.txt for {ctx.namespace}/{ctx.pod}/{ctx.container} (GREETING={env.get('GREETING')})")
    deadline = time.monotonic() + (limit := float(arg.rstrip("s") or 10))
    while not os.path.exists(f"{vol}/drained"):
        if time.monotonic() > deadline: raise TimeoutError(f"{vol}/drained did not appear within {limit:g}s")
        time.sleep(0.1)
    print(f"{vol}/drained appeared")
