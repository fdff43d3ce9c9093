"""The RBM as a TensorFlow 1.x-style graph, run in a session through ``tf.compat.v1``.

The weights and biases live in the graph as Variables; a batch of visible vectors (its
stored entries) is the only thing fed per step, and one ``sess.run`` performs a whole CD-k
update.
"""
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI
# oneDNN's kernels: on our 2-core machines a CD step runs 1.25× (H=64) to 1.6× (H=1024)
# faster than with the default Eigen ones
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's native start-up notes ("oneDNN custom operations are on") go straight to
    file descriptor 2 before any log level applies; hide them, and only them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from . import kernel  # noqa: E402  (TensorFlow-free; it loads the kernel's op only when asked)

with _quiet_native_stderr():
    import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()


def _variable(shape, name):
    """A float32 variable of zeros. The parameters' values are loaded once the session starts
    (``set_params``): as a variable's initial value a value is a constant in the graph,
    copied with it into the session (at 1,024 hidden units, 41 MB of weights took 0.3 GB of
    memory, and briefly 0.6)."""
    return tf1.Variable(tf.zeros(shape, tf.float32), name=name)


def checked_batch(batch, n_visible):
    """``batch`` (dense array or CSR, (batch, n_visible)) as a float32 CSR matrix with each
    entry stored once; a ValueError if its width is not ``n_visible``."""
    batch = sp.csr_matrix(batch, dtype=np.float32)
    if not batch.has_canonical_format:
        # a book stored twice for a reader would count twice in the error's data terms
        # (the sums would add it up right); a copy, so that the caller's matrix stays as it was
        batch = batch.copy()
        batch.sum_duplicates()
    if batch.shape[1] != n_visible:
        raise ValueError(f"a batch of {batch.shape[1]} visible units for a graph of {n_visible}")
    return batch


def entries(batch):
    """The stored entries of ``batch`` (CSR, (batch, n_visible)), int32 indices: in row order
    ``rows``, ``columns``, ``values``; in column order ``readers``, ``books``,
    ``values_by_column``."""
    by_column = batch.tocsc()
    return {
        "rows": np.repeat(np.arange(batch.shape[0], dtype=np.int32), np.diff(batch.indptr)),
        "columns": batch.indices.astype(np.int32, copy=False),
        "values": batch.data,
        "readers": by_column.indices.astype(np.int32, copy=False),
        "books": np.repeat(np.arange(batch.shape[1], dtype=np.int32), np.diff(by_column.indptr)),
        "values_by_column": by_column.data,
    }


class RBMGraph:
    """Contrastive-divergence training graph with binary, sampled hidden units.

    One Gibbs step is h ~ p(h|v) (binary samples) → v' = p(v|h) → p(h|v'); CD-k chains k
    of them from the data. By default the reconstruction v' uses probabilities, not
    samples: the visible values are ratings scaled to [0, 1] (or read/unread), and a binary
    sample of them only adds noise to the negative statistics (Hinton, "A Practical Guide
    to Training RBMs", 3.2). ``sample_visible=True`` samples them instead, as the original
    write-up did. The positive and negative statistics use hidden probabilities; only the
    hidden states that drive a reconstruction are sampled, the same guide's advice (3.1-3.3),
    which keeps the hidden layer an information bottleneck.

    The data side stays sparse: a batch is fed as its stored entries (about 1% of a dense
    batch), once in row order and once in column order, and v W, vᵀ h, the visible-bias
    statistics and the error's data terms are segment sums over them (for rating input vᵀ h
    is a CSR matrix's product: the same sum). Only the reconstruction is dense, so a step
    does three dense products (h Wᵀ, v' W, v'ᵀ h') and never copies a dense batch in:
    8-20% faster than dense batches (H=64 to 1024), measured interleaved in one process.
    With ``binary_input`` every stored value is 1 and the sums need no multiplication
    (TensorFlow's fused sparse segment sum; a CSR product there would be a little faster,
    but it adds in another order, and the trained models would move).

    Updates: velocity = momentum · velocity + learning_rate · (gradient - weight_decay · W),
    then parameters += velocity (weight decay applies to the weights only).

    Series units (``bookrbm.series``), when ``series`` is given: one more binary hidden unit
    per series, whose weights reach only that series' books; sampled and updated like the
    others by the same step (their step ``series_step`` times larger, and no weight decay:
    there are only n_visible of them). With ``series_keep`` < 1 each reader of a batch
    trains with each series unit only at that chance (dropout); a reconstruction uses them
    all, at full strength (measured better than scaled by ``series_keep``, README).

    With ``short_lists`` above 0 a share of each batch's readers is cut to 1..
    ``short_list_books`` of their books (``train.shorten_lists``): by the trainer's feeds for
    the graph's step (``train.epoch_feeds``), which ask the graph; with ``step="kernel"``,
    where each step is one op of our own (``bookrbm/kernel.py``), by that op itself, with its
    own draws (``cuts_lists``). That op takes several batches a run (``feed_batches``,
    ``batches_per_run``), each as a run of its own would.

    Shapes: a batch (batch, n_visible), dense or CSR; weights (n_visible, n_hidden); series
    (n_visible,) int, -1 for a book in no series; series_weights (n_visible,); series_bias
    (n_series,).
    """

    def __init__(
        self,
        weights,
        visible_bias,
        hidden_bias,
        learning_rate,
        seed=0,
        momentum=0.0,
        weight_decay=0.0,
        cd_steps=1,
        sample_visible=False,
        hidden_keep=1.0,
        binary_input=False,
        series=None,
        series_weights=None,
        series_bias=None,
        series_step=1.0,
        series_keep=1.0,
        step="graph",
        short_lists=0.0,
        short_list_books=20,
    ):
        n_visible, n_hidden = weights.shape
        if step not in ("graph", "kernel"):
            raise ValueError(f"a step by 'graph' or 'kernel', not {step!r}")
        self.by_kernel = step == "kernel"
        # the short lists this graph trains on; the kernel's step cuts them itself
        # (``train.shorten_lists`` in C++, with its draws), the graph's takes them cut
        self.short_lists, self.short_list_books = short_lists, short_list_books
        self.cuts_lists = bool(short_lists) and self.by_kernel
        # batches a feed of the trainer's holds (``feed_batches``): the graph's step takes one
        self.batches_per_run = kernel.BATCHES_PER_RUN if self.by_kernel else 1
        if self.by_kernel:
            problem = kernel.unsupported(cd_steps, sample_visible, n_hidden)
            if problem:
                raise ValueError(problem)
        self.n_visible = n_visible
        self.graph = tf.Graph()
        # the kernel's op is a CPU op, and reads the variables where it runs: all on the CPU
        # then, where a GPU would otherwise take them
        on_cpu = tf.device("/cpu:0") if self.by_kernel else contextlib.nullcontext()
        with self.graph.as_default(), on_cpu:
            tf1.set_random_seed(seed)
            # the batch's stored entries in row order (rows, columns, values), the same entries
            # in column order (for the graph's update; the kernel makes them itself), its row
            # count; the kernel takes the batch's CSR indptr in place of the rows
            if self.by_kernel:
                self.indptr = tf1.placeholder(tf.int32, [None], name="indptr")
                self.batch_sizes = tf1.placeholder(tf.int32, [None], name="batch_sizes")  # a feed's (``feed_batches``)
                lengths = self.indptr[1:] - self.indptr[:-1]
                self.rows = tf.repeat(tf.range(tf.size(lengths)), lengths)
            else:
                self.rows = tf1.placeholder(tf.int32, [None], name="rows")
            self.columns = tf1.placeholder(tf.int32, [None], name="columns")
            self.values = tf1.placeholder(tf.float32, [None], name="values")
            self.binary = binary_input
            if not self.by_kernel:
                if binary_input:  # for TensorFlow's sparse segment sum
                    self.rows_by_column = tf1.placeholder(tf.int32, [None], name="rows_by_column")
                    self.columns_by_column = tf1.placeholder(tf.int32, [None], name="columns_by_column")
                else:  # (book, reader) pairs and their values, for a CSR matrix
                    self.entries_by_column = tf1.placeholder(tf.int64, [None, 2], name="entries_by_column")
                    self.values_by_column = tf1.placeholder(tf.float32, [None], name="values_by_column")
            self.batch_size = tf1.placeholder(tf.int32, [], name="batch_size")
            self.weights = _variable(np.shape(weights), "weights")
            self.visible_bias = _variable(np.shape(visible_bias), "visible_bias")
            self.hidden_bias = _variable(np.shape(hidden_bias), "hidden_bias")
            initial = [weights, visible_bias, hidden_bias]
            params = [self.weights, self.visible_bias, self.hidden_bias]
            batch = self.batch_size
            self.n_series = 0 if series is None else len(series_bias)
            if self.n_series:
                # a book in no series points at a last, always-off unit, so that gathers need no mask
                self.series_index = tf.constant(np.where(series >= 0, series, self.n_series).astype(np.int32))
                in_series = np.flatnonzero(series >= 0)  # ascending
                their_series = series[in_series]
                self.books_in_series = tf.constant(in_series.astype(np.int32))
                self.their_series = tf.constant(their_series.astype(np.int32))
                self.entry_series = tf.gather(self.series_index, self.columns)  # each fed entry's book's series
                self.series_weights = _variable(np.shape(series_weights), "series_weights")
                self.series_bias = _variable(np.shape(series_bias), "series_bias")
                self.to_series, self.from_series = self._series_matrices(in_series, their_series)
                params += [self.series_weights, self.series_bias]
                initial += [series_weights, series_bias]
                self.series_noise = tf1.placeholder_with_default(
                    tf.random.uniform([batch, self.n_series], seed=seed + 3), [None, self.n_series], name="series_noise"
                )
            # The hidden units' draws and dropout, from seeded ops (``_draws``). Fed only by
            # tests, to compare one step with a NumPy reference on fixed draws: the kernel's
            # step makes its own unless fed, and the error's (batch_error) are not fed then.
            noise_seed, kept_seed = seed, seed + 7
            if self.by_kernel:
                self._places = {
                    op_seed: tf1.Variable(tf.zeros([], tf.int64), name=f"draws_{op_seed}_place")
                    for op_seed in (noise_seed, kept_seed)
                }
                self.hidden_noise = tf1.placeholder_with_default(tf.zeros([0, n_hidden]), [None, n_hidden], name="hidden_noise")
                noise = self._draws(batch, n_hidden, noise_seed)
            else:
                self.hidden_noise = noise = tf1.placeholder_with_default(
                    self._draws(batch, n_hidden, noise_seed), [None, n_hidden], name="hidden_noise"
                )
            h0_mean = self._mean_hiddens_of_batch()
            if hidden_keep < 1.0:
                # dropout RBM (Srivastava et al. 2014): each example trains a random sub-RBM
                keep = tf.cast(self._draws(batch, n_hidden, kept_seed) < hidden_keep, tf.float32)
                h0_mean = h0_mean * keep
            h_mean = h0_mean
            g0_mean = g_mean = self._mean_series_of_batch() if self.n_series else None
            if self.n_series and series_keep < 1.0:
                # dropout of the series units: a reader trains without some of them, so the
                # ordinary hidden units learn series too (what a reader of a few books needs)
                self.series_kept = tf1.placeholder_with_default(
                    tf.cast(tf.random.uniform([batch, self.n_series], seed=seed + 11) < series_keep, tf.float32),
                    [None, self.n_series], name="series_kept",
                )
                series_kept = self.series_kept
                g0_mean = g_mean = g0_mean * series_kept
            series_noise = self.series_noise if self.n_series else None
            # The reconstruction is kept book-major, (n_visible, batch): every product and
            # sum below takes it as it is, with no transpose of a 1M-element batch (three of
            # them a step when it was batch-major: 7-16% of an H=64 step, measured interleaved).
            for step in range(cd_steps):
                # the samples unit-major, (n_hidden, batch), for the product with the weights
                # (``_mean_visibles``); the cast after the comparison keeps TensorFlow's
                # optimizer from folding a transpose into the product. The draws and
                # probabilities are transposed, not the comparison's booleans: oneDNN's
                # transpose of booleans printed an error line ("supports DT_BOOL only on
                # platforms with AVX-512") in every training run, on AVX-512 machines too; so
                # did one of bytes, and one of bfloat16s the optimizer moved back onto the
                # booleans. The same samples; 0.02 ms a step at H=64, 0.04 at H=1024 (alone)
                h_sample = tf.cast(tf.transpose(noise) < tf.transpose(h_mean), tf.float32)
                g_sample = tf.cast(series_noise < g_mean, tf.float32) if self.n_series else None
                v_model = self._mean_visibles(h_sample, g_sample)
                if step == 0:
                    v1 = v_model  # the error is that of the first reconstruction, whatever k is
                if sample_visible:
                    v_model = tf.cast(tf.random.uniform(tf.shape(v_model), seed=seed + 1 + step) < v_model, tf.float32)
                h_mean = self._mean_hiddens(v_model)
                if hidden_keep < 1.0:
                    h_mean = h_mean * keep
                noise = tf.random.uniform([batch, n_hidden], seed=seed + 1000 + step)
                if self.n_series:
                    # gathered once: the series weights' model statistics below take the same rows
                    v_in_series = tf.gather(v_model, self.books_in_series)
                    g_mean = self._mean_series(v_in_series)
                    if series_keep < 1.0:
                        g_mean = g_mean * series_kept
                    series_noise = tf.random.uniform([batch, self.n_series], seed=seed + 2000 + step)

            size = tf.cast(batch, tf.float32)
            if not self.by_kernel:
                gradients = self._gradients(
                    h0_mean, h_mean, v_model, g0_mean, g_mean, v_in_series if self.n_series else None, size,
                    weight_decay, series_step,
                )
            # Σ (v0 - v1)² over the dense batch, from the stored entries and Σ v1²:
            # where v0 is 0 the term is v1², so add (v0 - v1)² - v1² at the stored entries only
            # (Σ v1² as twice L2Loss: one pass over the dense reconstruction instead of a
            # square written out and summed: the same bits here, a few per cent of a write-up step)
            at_entries = tf.gather_nd(v1, tf.stack([self.columns, self.rows], axis=1))
            squared = 2.0 * tf.nn.l2_loss(v1) + tf.reduce_sum(tf.square(self.values - at_entries) - tf.square(at_entries))
            self.error = tf.identity(squared / (size * n_visible), name="reconstruction_error")
            velocities = [
                _variable(param.shape, param.op.name + "_velocity") if momentum else None
                for param in params
            ]
            if self.by_kernel:
                self.train_error, self.kept_entries = self._kernel_step(
                    params, velocities, series, learning_rate, noise_seed, kept_seed, momentum=momentum,
                    weight_decay=weight_decay, series_step=series_step, series_keep=series_keep, seed=seed,
                    short_lists=float(short_lists), short_list_books=short_list_books, hidden_keep=hidden_keep,
                )
            else:
                self.train_step = self._updates(params, gradients, velocities, learning_rate, momentum)
            self.scores = tf.transpose(self._mean_visibles(
                tf.transpose(hidden_keep * self._mean_hiddens_of_batch()),
                self._mean_series_of_batch() if self.n_series else None,
            ))
            self.init = tf1.global_variables_initializer()
            # loading other weights (the averaged ones, to measure them) without a new graph
            self._params = params
            self.loaded = [tf1.placeholder(tf.float32, param.shape) for param in params]
            self.load = tf.group(*[param.assign(value) for param, value in zip(params, self.loaded)])
        # The kernel's step is a chain of a few ops (the feeds', then the kernel, whose own two
        # threads do the work): run in the caller's thread, with no hand-off to TensorFlow's
        # inter-op threads, an epoch at the write-up's settings takes 10% less (0.556 against
        # 0.617 s at the full size, alternated). The graph's step, many ops side by side, is
        # slower so (1.13 against 1.08 s), and keeps them.
        inline = tf1.ConfigProto(inter_op_parallelism_threads=-1) if self.by_kernel else None
        self.session = tf1.Session(graph=self.graph, config=inline)
        self.session.run(self.init)
        self.set_params(*initial)

    # Gathers take rows of a variable's value, never of the variable itself: TensorFlow's
    # gather from a variable (ResourceGather) switches it to copying on every read, and the
    # weights' three reads a step then copied 2.5 MB each (9% of an H=64 step, rating input).

    def _mean_hiddens_of_batch(self):
        """p(h|v) of the fed batch, from its entries in row order."""
        rows, columns, values = self.rows, self.columns, self.values
        if self.binary:
            total = tf.sparse.segment_sum(self.weights, columns, rows, num_segments=self.batch_size)
        else:
            total = tf.math.segment_sum(tf.gather(self.weights.value(), columns) * values[:, None], rows)
            total = tf.pad(total, [[0, self.batch_size - tf.shape(total)[0]], [0, 0]])
        return tf.sigmoid(total + self.hidden_bias)

    def _sparse_transposed_product(self, hidden):
        """vᵀ hidden of the fed batch, (n_visible, n_hidden), from its entries in column order."""
        if self.binary:
            return tf.sparse.segment_sum(hidden, self.rows_by_column, self.columns_by_column, num_segments=self.n_visible)
        # A CSR matrix's product adds each book's terms in the same order as an unsorted
        # segment sum of the gathered rows times the values (the same bits), without writing
        # those rows out first: 0.16 against 0.55 ms at H=64, the write-up settings' largest op
        shape = tf.stack([tf.constant(self.n_visible, tf.int64), tf.cast(self.batch_size, tf.int64)])
        batch = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=self.entries_by_column, values=self.values_by_column, dense_shape=shape
        )
        return tf.raw_ops.SparseMatrixMatMul(a=batch, b=hidden)

    def _gradients(self, h0_mean, h_mean, v_model, g0_mean, g_mean, v_in_series, size, weight_decay, series_step):
        """Each parameter's gradient by TensorFlow's ops, from the data's and the model's
        statistics: the weights', the visible and hidden biases', and the series units'."""
        n_visible = self.n_visible
        data_visible = tf.math.unsorted_segment_sum(self.values, self.columns, n_visible)  # Σ over the batch of v0
        # Σ over the batch of v0ᵀh0, made once the reconstruction is: TensorFlow then runs
        # this single-threaded sum beside the product v'W instead of beside h Wᵀ, which
        # it slowed (the same ops and bits; 3-4% of an H=1024 step, measured interleaved)
        with tf.control_dependencies([v_model]):
            data_weights = self._sparse_transposed_product(h0_mean)
        weight_gradient = (data_weights - tf.matmul(v_model, h_mean)) / size
        if weight_decay:  # none at the write-up's settings, whose step skips this pass over the weights
            weight_gradient = self._decayed(weight_gradient, weight_decay)
        gradients = [
            weight_gradient,
            (data_visible - tf.reduce_sum(v_model, axis=1)) / size,
            tf.reduce_mean(h0_mean - h_mean, axis=0),
        ]
        if self.n_series:
            # each book's weight to its own series' unit: v_i g_s(i) in the data less the model
            data_series = tf.gather_nd(
                self._padded(g0_mean), tf.stack([self.rows, self.entry_series], axis=1)
            )
            data_series = tf.math.unsorted_segment_sum(self.values * data_series, self.columns, n_visible)
            # only the books in a series (a third) have a term; the others' is 0, so they
            # are left out of the product and the sum (1-2% of an H=64 step, measured interleaved)
            in_series = tf.reduce_sum(v_in_series * self._per_book_in_series(g_mean), axis=1)
            model_series = tf.scatter_nd(self.books_in_series[:, None], in_series, [n_visible])
            gradients += [
                series_step * (data_series - model_series) / size,
                series_step * tf.reduce_mean(g0_mean - g_mean, axis=0),
            ]
        return gradients

    def _updates(self, params, gradients, velocities, learning_rate, momentum):
        """The update of every parameter by its gradient (through its velocity with momentum),
        as one op to run."""
        updates = []
        # param += learning_rate · gradient, and with momentum velocity = momentum ·
        # velocity + learning_rate · gradient, then param += velocity: TensorFlow's own
        # update kernels do exactly that (the same bits) when given the gradient and
        # -learning_rate as their rate (var -= -rate · gradient; velocity = momentum ·
        # velocity - (-rate) · gradient, var += velocity), each one pass in place where a
        # product with the rate and an add were two
        minus_rate = tf.constant(-learning_rate, tf.float32)
        if momentum:
            momentum_factor = tf.constant(momentum, tf.float32)
        # Every read of the variables above must happen before any of them is updated.
        with tf.control_dependencies(gradients + [self.error]):
            for param, gradient, velocity in zip(params, gradients, velocities):
                if velocity is None:
                    updates.append(tf.raw_ops.ResourceApplyGradientDescent(
                        var=param.handle, alpha=minus_rate, delta=gradient,
                    ))
                else:
                    updates.append(tf.raw_ops.ResourceApplyKerasMomentum(
                        var=param.handle, accum=velocity.handle, lr=minus_rate, grad=gradient,
                        momentum=momentum_factor,
                    ))
        return tf.group(*updates, name="cd_update")

    def _draws(self, rows, columns, op_seed):
        """(rows, columns) uniform draws of the seeded op ``op_seed``: TensorFlow's own in the
        graph's step. In the kernel's, the same numbers by the kernel's RbmUniform, which
        takes them at the op's place in its stream: a variable it shares with the kernel's
        step, which draws them too, so that the two take turns on one stream as the graph's
        step and its error (``batch_error``) do on the op's. The same seeds, the same draws:
        a kernel step is the graph's, its dropout and sampling included."""
        if not self.by_kernel:
            return tf.random.uniform([rows, columns], seed=op_seed)
        place, seeds = self._stream(op_seed)
        return kernel.ops().rbm_uniform(place, rows, seeds=seeds, columns=columns)

    def _stream(self, op_seed):
        """The seeded op ``op_seed``'s stream as the kernel's ops take it: its place's
        variable handle, and the op's two seeds (the graph's and its own, as TensorFlow's op
        would have them)."""
        return self._places[op_seed].handle, list(tf1.get_seed(op_seed))

    def _kernel_step(self, params, velocities, series, learning_rate, noise_seed, kept_seed, **options):
        """The update by the kernel's one op (``bookrbm/kernel.py``), and its outputs: each fed
        batch's reconstruction error and which of the fed entries its cut of short lists kept.
        The same step as the graph's ops, on the same variables and the same draws of the
        hidden units and their dropout (the graph's ops' numbers, made in the kernel:
        ``_draws``, of the ops ``noise_seed`` and ``kept_seed``); the series units' draws are
        its own, unless fed (``series_noise``, ``series_kept``), and so is its cut."""
        (noise_place, noise_seeds), (kept_place, kept_seeds) = self._stream(noise_seed), self._stream(kept_seed)
        n_series = self.n_series
        self.series_noise_fed, self.series_kept_fed = (
            tf1.placeholder_with_default(tf.zeros([0, n_series]), [None, n_series]) for _ in range(2)
        )
        if series is None:
            series = np.full(self.n_visible, -1)
        return kernel.ops().rbm_cd1_step(
            params=[param.handle for param in params],
            velocities=[velocity.handle for velocity in velocities if velocity is not None],
            noise_place=noise_place, kept_place=kept_place, noise_seeds=noise_seeds, kept_seeds=kept_seeds,
            series=tf.constant(np.asarray(series, np.int32)),
            indptr=self.indptr, columns=self.columns, values=self.values, batch_sizes=self.batch_sizes,
            hidden_noise=self.hidden_noise,
            series_noise=self.series_noise_fed, series_kept=self.series_kept_fed,
            learning_rate=tf.constant(learning_rate, tf.float32), **options,
        )

    def _decayed(self, gradient, weight_decay):
        """``gradient`` - weight_decay · W, in place.

        By TensorFlow's update kernel (var -= alpha · delta), which rounds the product and
        then the difference, as a product and a difference would: the same bits, in one pass
        over the weights' size where those took two (4% of an H=1024 step, measured
        interleaved). The variable takes the gradient's buffer as it is, with no copy, as
        nothing else reads it."""
        decayed = _variable(self.weights.shape, "decayed_gradient")
        with tf.control_dependencies([decayed.assign(gradient, read_value=False)]):
            update = tf.raw_ops.ResourceApplyGradientDescent(
                var=decayed.handle, alpha=tf.constant(weight_decay, tf.float32), delta=self.weights.value()
            )
        with tf.control_dependencies([update]):
            return decayed.read_value()

    def _mean_hiddens(self, v):
        """p(h|v) of book-major visible values ``v`` (n_visible, batch), (batch, n_hidden)."""
        return tf.sigmoid(tf.matmul(v, self.weights, transpose_a=True) + self.hidden_bias)

    def _mean_visibles(self, h_by_unit, g=None):
        """p(v|h, g), book-major: (n_visible, batch), from the hidden values unit-major,
        ``h_by_unit`` (n_hidden, batch).

        Unit-major, where the product's transpose flag would take them batch-major: oneDNN's
        product then takes another path, with the same bits, and 20% faster at H=1024 (5.9
        against 7.4 ms alone; 5% at H=64). A transpose of them just before the product
        would not do: TensorFlow's optimizer folds it into the product's flag."""
        activations = tf.matmul(self.weights, h_by_unit) + self.visible_bias[:, None]
        if g is not None:
            # each book's own series unit times its weight, 0 for a book in no series
            activations += tf.raw_ops.SparseMatrixMatMul(a=self.from_series, b=g, transpose_b=True)
        return tf.sigmoid(activations)

    def _mean_series_of_batch(self):
        """p(g|v) of the series units for the fed batch, from its entries, (batch, n_series)."""
        width = self.n_series + 1
        where = self.rows * width + self.entry_series
        totals = tf.math.unsorted_segment_sum(
            self.values * tf.gather(self.series_weights.value(), self.columns), where, self.batch_size * width
        )
        return tf.sigmoid(tf.reshape(totals, [-1, width])[:, :-1] + self.series_bias)

    def _mean_series(self, v_in_series):
        """p(g|v) of the series units, (batch, n_series), from the book-major visible values
        of the books in a series only, ``v_in_series`` (n_books_in_series, batch), in the order
        of ``books_in_series``.

        Only those books are summed (a third of them), in ascending order, so each unit's sum
        adds the same terms in the same order as a sum over all books would."""
        totals = tf.raw_ops.SparseMatrixMatMul(a=self.to_series, b=v_in_series, transpose_output=True)
        return tf.sigmoid(totals + self.series_bias)

    def _per_book_in_series(self, g):
        """Each book in a series' own unit's value, book-major: (n_books_in_series, batch),
        in the order of ``books_in_series``."""
        return tf.gather(tf.transpose(g), self.their_series)

    def _padded(self, g):
        return tf.pad(g, [[0, 0], [0, 1]])

    def _series_matrices(self, in_series, their_series):
        """The series weights as two CSR matrices, read once a run: (n_series,
        n_books_in_series), each unit's books in the order of ``books_in_series``
        (``in_series``, whose units are ``their_series``), and (n_visible, n_series), each
        book's own unit.

        Their products take the place of gathers, elementwise products and a segment sum
        (5-8% of an H=64 step with the defaults, measured interleaved). A CSR product adds
        each row's terms in order, each term rounded before it is added, as those did: the
        same bits."""
        by_series = np.lexsort((in_series, their_series))
        weights = self.series_weights.value()

        def csr(rows, columns, books, shape):
            return tf.raw_ops.SparseTensorToCSRSparseMatrix(
                indices=tf.constant(np.stack([rows, columns], axis=1).astype(np.int64)),
                values=tf.gather(weights, tf.constant(books.astype(np.int32))),
                dense_shape=tf.constant(shape, tf.int64),
            )

        to_series = csr(their_series[by_series], by_series, in_series[by_series], [self.n_series, len(in_series)])
        from_series = csr(in_series, their_series, in_series, [self.n_visible, self.n_series])
        return to_series, from_series

    def feed(self, batch):
        """The placeholders' values for a batch (dense array or CSR, (batch, n_visible)): what
        ``train_feed`` takes."""
        batch = checked_batch(batch, self.n_visible)
        if self.binary and not np.all(batch.data == 1):
            raise ValueError("a graph for binary input was given values other than 1")
        if self.by_kernel:  # row order only, as CSR: the kernel makes the column order
            return self._kernel_feed(batch.indptr, batch.indices, batch.data)
        given = entries(batch)
        if self.binary:
            in_column_order = {self.rows_by_column: given["readers"], self.columns_by_column: given["books"]}
        else:
            in_column_order = {
                self.entries_by_column: np.stack([given["books"], given["readers"]], axis=1, dtype=np.int64),
                self.values_by_column: given["values_by_column"],
            }
        return {
            self.rows: given["rows"],
            self.columns: given["columns"],
            self.values: given["values"],
            **in_column_order,
            self.batch_size: batch.shape[0],
        }

    def feed_batches(self, rows, batch_size):
        """The placeholders' values for the batches of ``batch_size`` readers (the last one
        fewer) that ``rows`` (CSR) holds one after the other: for the kernel's step, which
        takes them in one run (``batches_per_run``) as it would take each in a run of its own."""
        if not self.by_kernel:
            raise ValueError("only the kernel's step takes several batches a run")
        rows = checked_batch(rows, self.n_visible)
        sizes = np.diff(np.append(np.arange(0, rows.shape[0], batch_size), rows.shape[0]))
        return self._kernel_feed(rows.indptr, rows.indices, rows.data, sizes)

    def _kernel_feed(self, indptr, columns, values, sizes=None):
        readers = len(indptr) - 1
        return {self.indptr: indptr.astype(np.int32, copy=False), self.columns: columns.astype(np.int32, copy=False),
                self.values: values, self.batch_size: readers,
                self.batch_sizes: np.array([readers] if sizes is None else sizes, np.int32)}

    def train_batch(self, batch, hidden_noise=None, series_noise=None, series_kept=None):
        """One CD-k update on a batch (dense or CSR); returns its reconstruction error."""
        return self.train_feed(self.feed(batch), hidden_noise, series_noise, series_kept)[0]

    def train_feed(self, feed, hidden_noise=None, series_noise=None, series_kept=None):
        """The CD-k updates on the batches of a ``feed`` (``feed(batch)``, or for the
        kernel's step ``feed_batches``, made beforehand: the trainer makes the next ones while
        this runs); returns their reconstruction errors, a list. The noises, fed only by
        tests, replace the graph's draws."""
        feed = dict(feed)
        if hidden_noise is not None:
            feed[self.hidden_noise] = hidden_noise
        if series_noise is not None:
            feed[self.series_noise_fed if self.by_kernel else self.series_noise] = series_noise
        if series_kept is not None:
            feed[self.series_kept_fed if self.by_kernel else self.series_kept] = series_kept
        if self.by_kernel:
            return [float(error) for error in self.session.run(self.train_error, feed)]
        _, error = self.session.run([self.train_step, self.error], feed)
        return [float(error)]

    def batch_error(self, batch):
        """Reconstruction error of a batch, with no update."""
        return float(self.session.run(self.error, self.feed(batch)))

    def reconstruct(self, batch):
        """Mean-field reconstruction p(v | p(h|v)), (batch, n_visible)."""
        return self.session.run(self.scores, self.feed(batch))

    def set_params(self, *params):
        """Make these the graph's parameters, in ``params``' order (the velocities stay as they are)."""
        if len(params) != len(self.loaded):
            raise ValueError(f"{len(params)} parameters for a graph of {len(self.loaded)}")
        self.session.run(self.load, dict(zip(self.loaded, params)))

    def params(self):
        """Current (weights, visible_bias, hidden_bias[, series_weights, series_bias]) as NumPy arrays."""
        return self.session.run(self._params)

    def close(self):
        self.session.close()
