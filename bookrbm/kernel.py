"""The trainer's CD-1 step as one C++ kernel of our own (``native/cd1_step.cc``,
``train_rbm.py --step kernel``): built with the machine's C++ compiler against the installed
TensorFlow's headers the first time it is asked for, kept in a cache folder, and loaded into
TensorFlow as an op the trainer's graph runs in its session (``RBMGraph``).

Why, and what it costs, is in the README ("Full-scale performance"): on our 2-core AVX-512
machines an epoch at H=64 takes about a third of the time of TensorFlow's ops; it needs g++ (or
$CXX), runs on the CPU only, and its blocks are sized for AVX-512.
"""
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

from . import paths
from .errors import InputError

NATIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native")
SOURCE = os.path.join(NATIVE, "cd1_step.cc")
HEADERS = [os.path.join(NATIVE, name) for name in ("cd1.h", "index_checks.h", "philox.h")]
MAX_BATCH = 112  # cd1.h's Passes::kMaxBatch: seven vectors of 16 readers a book
HIDDEN_MULTIPLE = 64  # the update's block of hidden units
# batches the trainer hands the kernel's step a session run (``RBMGraph.feed_batches``): each
# run cost tens of microseconds around the op, a few per cent of a step at H=64
BATCHES_PER_RUN = 16

_loaded = None


def cache_folder():
    """Where built kernels are kept: $BOOKRBM_CACHE, else bookrbm/ in $XDG_CACHE_HOME or ~/.cache."""
    if os.environ.get("BOOKRBM_CACHE"):
        return os.environ["BOOKRBM_CACHE"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bookrbm")


def compiler_of(compiler=None):
    """The C++ compiler's command: ``compiler``, else $CXX, else g++; an InputError if there is none."""
    compiler = compiler or os.environ.get("CXX", "g++")
    if not has_compiler(compiler):
        raise InputError(f"{compiler}: no such C++ compiler; set CXX to one")
    return compiler


def has_compiler(compiler=None):
    """Whether there is the C++ compiler ``compiler``, else $CXX, else g++ (the tests' skips)."""
    return shutil.which(compiler or os.environ.get("CXX", "g++")) is not None


def compile_library(source, library, compiler=None, contract=False, include=(NATIVE,)):
    """Compile ``source`` into the shared library ``library`` (written whole or not at all).

    contract : the compiler may fuse a product and a sum into one multiply-add (rounded once),
        which kernels that keep TensorFlow's bits must not."""
    from .graph import tf

    compiler = compiler_of(compiler)
    folder = os.path.dirname(os.path.abspath(library))
    try:
        os.makedirs(folder, exist_ok=True)
        handle, partial = tempfile.mkstemp(suffix=".so", dir=folder)
    except OSError as error:
        raise InputError(f"{folder}: cannot build the kernel there ({error.strerror}); set BOOKRBM_CACHE to a writable folder")
    os.close(handle)
    command = [compiler, "-std=c++17", "-shared", "-fPIC", "-O3", "-march=native",
               "-ffp-contract=" + ("fast" if contract else "off"), "-w", *(f"-I{path}" for path in include),
               source, "-o", partial, *tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            errors = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines()[-1:] or ["no message"]
            raise InputError(f"{paths.shown(source)}: the build failed: {errors[0].strip()}")
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return library


def library_path(compiler=None):
    """The cached library's path for this source, TensorFlow, compiler and machine: a
    changed one of them is a new name, so a stale build is never loaded."""
    from .graph import tf

    compiler = compiler_of(compiler)
    digest = hashlib.sha256()
    for path in (SOURCE, *HEADERS):
        with open(path, "rb") as file:
            digest.update(file.read())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    digest.update(f"{tf.__version__}\n{shutil.which(compiler)}\n{version}\n{sorted(cpu_flags())}".encode())
    return os.path.join(cache_folder(), f"cd1_step-{digest.hexdigest()[:16]}.so")


def remove_other_builds(library):
    """Remove the builds beside ``library`` of other sources, TensorFlows or compilers, which
    would otherwise pile up, one for every change (a process that has one loaded keeps it)."""
    folder, name = os.path.split(library)
    for other in os.listdir(folder):
        if other.startswith("cd1_step-") and other.endswith(".so") and other != name:
            try:
                os.remove(os.path.join(folder, other))
            except OSError:
                pass  # another process's build, gone already


@functools.cache  # the machine's: read once a process
def cpu_flags():
    """The CPU's feature flags (Linux's /proc/cpuinfo), as a set; empty where unknown."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_avx512():
    return "avx512f" in cpu_flags()


def ops(compiler=None, log=print):
    """The kernel's ops (``rbm_cd1_step``), built first if no build of this source is cached.
    Loaded once a process: TensorFlow takes an op's first library only."""
    global _loaded
    if _loaded is None:
        from .graph import tf

        library = library_path(compiler)
        if not os.path.exists(library):
            log(f"building the kernel step (once, about 10 s) into {paths.shown(library)} …")
            compile_library(SOURCE, library, compiler, contract=True)
            remove_other_builds(library)
        try:
            _loaded = tf.load_op_library(library)
        except tf.errors.OpError as error:
            os.remove(library)  # so that the next run builds it again
            message = (error.message or "").replace(f"{library}: ", "").strip().splitlines()[:1] or ["no message"]
            raise InputError(f"{paths.shown(library)}: the built kernel does not load ({message[0]}); removed, so that"
                             " the next run builds it again")
    return _loaded


def unsupported(cd_steps, sample_visible, hidden, batch_size=None):
    """What of these the kernel step does not do, said as to the trainer's user; None if it
    does them all."""
    if cd_steps != 1:
        return f"--step kernel does CD-1 only, not --cd-steps {cd_steps}; use --step graph"
    if sample_visible:
        return "--step kernel reconstructs with probabilities only, not --sample-visible; use --step graph"
    if hidden % HIDDEN_MULTIPLE:
        return f"--step kernel needs --hidden a multiple of {HIDDEN_MULTIPLE}, not {hidden}"
    if batch_size is not None and batch_size > MAX_BATCH:
        return f"--step kernel takes batches of at most {MAX_BATCH}, not --batch-size {batch_size}"
    return None


def check_settings(settings):
    """An InputError if ``settings`` (the trainer's) ask of the kernel step what it does not do."""
    problem = unsupported(settings["cd_steps"], settings["sample_visible"], settings["hidden"], settings["batch_size"])
    if problem:
        raise InputError(problem)
