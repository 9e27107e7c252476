/* cmd-finetune.c - `hearth finetune`: trains a LoRA adapter on a JSON Lines
 * dataset (hearth_dataset_* + hearth_finetune_* in hearth.h) and writes it
 * in llama.cpp's GGUF LoRA format (what `hearth run --lora` and llama.cpp's
 * --lora load).
 *
 * Output: on a terminal one progress line redrawn in place (step/total, loss,
 * validation loss, learning rate, tokens/s, time left); otherwise one plain
 * line per step. Ctrl-C stops after the step under way and writes a
 * checkpoint (--checkpoint FILE, else OUT.ckpt) that --resume continues. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char finetune_help[] =
	"usage: hearth finetune -m BASE --data FILE.jsonl -o adapter.gguf [options]\n"
	"\n"
	"Trains a LoRA adapter on BASE (any type: quantized weights are read dequantized; the adapter\n"
	"trains in f32). Each line of FILE is {\"messages\": [...]} (OpenAI's chat fine-tuning format,\n"
	"rendered through the chat template, loss on the assistant turns) or {\"prompt\", \"completion\"}.\n"
	"Examples are packed whole into rows of --ctx tokens; AdamW with a linear warm-up and a cosine\n"
	"schedule; the same seed, data and threads give the same run. Ctrl-C writes a checkpoint.\n"
	"\n"
	"  -m FILE               the base model (a GGUF file or a stored name)\n"
	"  --data FILE           the training data (JSON Lines)\n"
	"  -o FILE               the adapter to write\n"
	"  --lora-rank N         rank of every adapter [8]\n"
	"  --lora-alpha X        scale alpha / rank [16]\n"
	"  --targets LIST        q,k,v,o,gate,up,down (comma-separated), attn (= q,k,v,o) or all [attn];\n"
	"                        a fused matrix (attn_qkv, gate+up ffn_up) gets one adapter if any part is named;\n"
	"                        on a mixture of experts gate,up,down adapt every expert (one adapter per stack)\n"
	"  --lr X                peak learning rate [1e-4]\n"
	"  --min-lr-ratio X      the cosine ends at lr * X [0.1]\n"
	"  --warmup N            warm-up steps [0]\n"
	"  --epochs N            passes over the data [1]\n"
	"  --steps N             stop after N steps (with --epochs 0: as many epochs as needed)\n"
	"  --ctx N               tokens of a packed row; longer examples are cut [512]\n"
	"  --batch N             rows per micro-batch [1]\n"
	"  --grad-accum N        micro-batches per optimizer step [1]\n"
	"  --weight-decay X      AdamW's decoupled weight decay [0]\n"
	"  --valid-split X       share of the examples held out for validation, 0 .. 0.5 [0]\n"
	"  --valid-every N       validation loss every N steps (0: at the end only) [0]\n"
	"  --seed N              adapters' start, data order and split [42]\n"
	"  --threads N, -t N     threads (0: the physical cores) [0]\n"
	"  --checkpoint FILE     where checkpoints go [OUT.ckpt]\n"
	"  --checkpoint-every N  a checkpoint every N steps (0: only on Ctrl-C) [0]\n"
	"  --resume FILE         continue from a checkpoint (same base, data and options)\n"
	"  --template FILE       a chat template (Jinja) instead of the model's\n";

struct ft_opts {
	const char *model, *data, *out, *ckpt, *resume, *template_path;
	struct hearth_finetune_params p;
	double valid_split;
	long long valid_every, ckpt_every;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* --targets: a list of matrix names, or attn / all. */
static bool parse_targets(const char *s, uint32_t *out)
{
	static const char *const names[] = { "q", "k", "v", "o", "gate", "up", "down" };
	if (!strcmp(s, "attn") || !strcmp(s, "all")) {
		*out = !strcmp(s, "all") ? 0x7f : 0x0f;
		return true;
	}
	*out = 0;
	for (const char *p = s; *p;) {
		const size_t n = strcspn(p, ",");
		int hit = -1;
		for (int k = 0; k < 7; k++)
			if (strlen(names[k]) == n && !strncmp(p, names[k], n))
				hit = k;
		if (hit < 0)
			return false;
		*out |= 1u << hit;
		p += n + (p[n] == ',');
	}
	return *out != 0;
}

/* One numeric option: its flag, range and where it goes. */
struct num_opt {
	const char *flag;
	double lo, hi;
	bool integer;
	int32_t *i32;
	int64_t *i64;
	long long *ll;
	float *f;
	double *d;
};

static int parse_num(const struct num_opt *o, const char *val)
{
	long long n;
	double x;
	if (o->integer) {
		if (!arg_int("finetune", o->flag, val, (long long)o->lo, (long long)o->hi, &n))
			return EXIT_USAGE;
		if (o->i32)
			*o->i32 = (int32_t)n;
		else if (o->i64)
			*o->i64 = n;
		else
			*o->ll = n;
		return 0;
	}
	if (!arg_float("finetune", o->flag, val, o->lo, o->hi, &x))
		return EXIT_USAGE;
	if (o->f)
		*o->f = (float)x;
	else
		*o->d = x;
	return 0;
}

static int parse_args(struct ft_opts *o, int argc, char **argv)
{
	struct hearth_finetune_params *p = &o->p;
	long long seed = 42;
	const struct num_opt nums[] = {
		{ "--lora-rank", 1, 1024, true, &p->trainer.rank, 0, 0, 0, 0 },
		{ "--lora-alpha", 1e-6, 1e6, false, 0, 0, 0, &p->trainer.alpha, 0 },
		{ "--lr", 1e-12, 10, false, 0, 0, 0, &p->lr, 0 },
		{ "--min-lr-ratio", 0, 1, false, 0, 0, 0, &p->min_lr_ratio, 0 },
		{ "--warmup", 0, 1e9, true, &p->warmup, 0, 0, 0, 0 },
		{ "--epochs", 0, 1e6, true, &p->epochs, 0, 0, 0, 0 },
		{ "--steps", 1, 1e12, true, 0, &p->max_steps, 0, 0, 0 },
		{ "--ctx", 8, 65536, true, &p->trainer.n_ctx, 0, 0, 0, 0 },
		{ "--batch", 1, 4096, true, &p->batch_rows, 0, 0, 0, 0 },
		{ "--grad-accum", 1, 4096, true, &p->grad_accum, 0, 0, 0, 0 },
		{ "--weight-decay", 0, 1, false, 0, 0, 0, &p->weight_decay, 0 },
		{ "--valid-split", 0, 0.5, false, 0, 0, 0, 0, &o->valid_split },
		{ "--valid-every", 0, 1e12, true, 0, 0, &o->valid_every, 0, 0 },
		{ "--seed", 0, 9e18, true, 0, 0, &seed, 0, 0 },
		{ "--threads", 0, 512, true, &p->trainer.n_threads, 0, 0, 0, 0 },
		{ "-t", 0, 512, true, &p->trainer.n_threads, 0, 0, 0, 0 },
		{ "--checkpoint-every", 0, 1e12, true, 0, 0, &o->ckpt_every, 0, 0 },
	};
	const struct { const char *flag; const char **dst; } strs[] = {
		{ "-m", &o->model }, { "--data", &o->data }, { "-o", &o->out }, { "--checkpoint", &o->ckpt },
		{ "--resume", &o->resume }, { "--template", &o->template_path },
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val;
		bool taken = false;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(finetune_help, stdout);
			return -1;
		}
		if (!(val = arg_value("finetune", argc, argv, &i)))
			return EXIT_USAGE;
		for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !taken; k++)
			if (!strcmp(a, nums[k].flag)) {
				if (parse_num(&nums[k], val))
					return EXIT_USAGE;
				taken = true;
			}
		for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !taken; k++)
			if (!strcmp(a, strs[k].flag)) {
				*strs[k].dst = val;
				taken = true;
			}
		if (!taken && !strcmp(a, "--targets")) {
			if (!parse_targets(val, &p->trainer.targets))
				return usage_error("finetune", "--targets is a list of q,k,v,o,gate,up,down, or attn, or all; not '%s'", val);
			taken = true;
		}
		if (!taken)
			return usage_error("finetune", "unknown option '%s'", a);
	}
	p->trainer.seed = (uint64_t)seed;
	if (!o->model || !o->data || !o->out)
		return usage_error("finetune", "-m, --data and -o are required");
	if (p->epochs == 0 && p->max_steps == 0)
		return usage_error("finetune", "--epochs 0 needs --steps");
	if (o->valid_every && o->valid_split == 0)
		return usage_error("finetune", "--valid-every needs --valid-split");
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(double s, char *buf, size_t size)
{
	const long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
	if (t >= 3600)
		snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, size, "%02ld:%02ld", t / 60, t % 60);
}

/* Progress: a redrawn bar on a terminal, a line per step otherwise. */
struct progress {
	bool tty, drew;
	double t0;
	int64_t step0, tokens;
	double valid; /* the last validation loss, or < 0 */
};

static void progress_show(struct progress *pr, const struct hearth_finetune_report *r)
{
	pr->tokens += r->n_tokens;
	const double el = now_s() - pr->t0, done = (double)(r->step - pr->step0);
	const double tps = el > 0 ? (double)pr->tokens / el : 0;
	char left[32], vl[32] = "";
	fmt_time(done > 0 ? el / done * (double)(r->n_steps - r->step) : 0, left, sizeof left);
	if (pr->valid >= 0)
		snprintf(vl, sizeof vl, " valid %.4f", pr->valid);
	if (!pr->tty) {
		printf("step %lld/%lld epoch %d loss %.4f%s lr %.3g tokens %lld (%.2f s) %.0f tok/s left %s\n",
		       (long long)r->step, (long long)r->n_steps, r->epoch + 1, r->loss, vl, r->lr,
		       (long long)r->tokens_total, r->seconds, tps, left);
		fflush(stdout);
		return;
	}
	char bar[21];
	const int fill = (int)(20 * r->step / (r->n_steps ? r->n_steps : 1));
	for (int k = 0; k < 20; k++)
		bar[k] = k < fill ? '#' : '.';
	bar[20] = 0;
	fprintf(stderr, "\r[%s] %lld/%lld loss %.4f%s lr %.2e %.0f tok/s %s left \033[K", bar, (long long)r->step,
		(long long)r->n_steps, r->loss, vl, r->lr, tps, left);
	pr->drew = true;
}

static int validate(struct hearth_finetune *ft, struct progress *pr, bool final)
{
	struct hearth_err err = { 0 };
	double v;
	if (hearth_finetune_validate(ft, &v, &err)) {
		fprintf(stderr, "%shearth finetune: %s\n", pr->drew ? "\n" : "", err.msg);
		return 1;
	}
	pr->valid = v;
	if (!pr->tty || final) {
		if (pr->drew)
			fputc('\n', stderr);
		pr->drew = false;
		printf("step %lld validation loss %.4f\n", (long long)hearth_finetune_step_index(ft), v);
		fflush(stdout);
	}
	return 0;
}

static int write_ckpt(struct hearth_finetune *ft, const char *path, struct progress *pr)
{
	struct hearth_err err = { 0 };
	if (hearth_finetune_checkpoint(ft, path, &err)) {
		fprintf(stderr, "%shearth finetune: %s\n", pr->drew ? "\n" : "", err.msg);
		return 1;
	}
	return 0;
}

/* The steps, with validation, checkpoints and Ctrl-C. */
static int train_loop(struct hearth_finetune *ft, const struct ft_opts *o, const char *ckpt, bool has_valid)
{
	struct progress pr = { .tty = isatty(2), .t0 = now_s(), .step0 = hearth_finetune_step_index(ft), .valid = -1 };
	struct hearth_err err = { 0 };
	while (!hearth_finetune_done(ft)) {
		struct hearth_finetune_report r;
		if (hearth_finetune_step(ft, &r, &err)) {
			fprintf(stderr, "%shearth finetune: %s\n", pr.drew ? "\n" : "", err.msg);
			return 1;
		}
		if (has_valid && o->valid_every && r.step % o->valid_every == 0 && r.step < r.n_steps && validate(ft, &pr, false))
			return 1;
		progress_show(&pr, &r);
		if (o->ckpt_every && r.step % o->ckpt_every == 0 && r.step < r.n_steps && write_ckpt(ft, ckpt, &pr))
			return 1;
		if (interrupted && !hearth_finetune_done(ft)) {
			if (write_ckpt(ft, ckpt, &pr))
				return 1;
			fprintf(stderr, "%shearth finetune: interrupted at step %lld: checkpoint %s (continue with --resume %s)\n",
				pr.drew ? "\n" : "", (long long)r.step, ckpt, ckpt);
			return 130;
		}
	}
	if (pr.drew)
		fputc('\n', stderr);
	pr.drew = false;
	return has_valid ? validate(ft, &pr, true) : 0;
}

static int load_data(const struct ft_opts *o, const struct hearth_model *m, struct hearth_dataset **d, char **tmpl)
{
	struct hearth_dataset_params dp = hearth_dataset_default_params();
	struct hearth_err err = { 0 };
	dp.valid_fraction = (float)o->valid_split;
	dp.seed = o->p.trainer.seed;
	dp.max_tokens = o->p.trainer.n_ctx;
	if (o->template_path) {
		if (!(*tmpl = cli_read_file(o->template_path, &dp.template_len))) {
			fprintf(stderr, "hearth finetune: cannot read %s: %s\n", o->template_path, strerror(errno));
			return 1;
		}
		dp.template_src = *tmpl;
	}
	if (hearth_dataset_load(d, m, o->data, &dp, &err)) {
		fprintf(stderr, "hearth finetune: %s\n", err.msg);
		return 1;
	}
	struct hearth_dataset_stats st;
	hearth_dataset_stats(*d, &st);
	fprintf(stderr, "hearth finetune: %s: %d examples (%d train, %d validation), %lld tokens, %lld trained; %d cut to %d tokens, %d dropped\n",
		o->data, st.lines, st.n_train, st.n_valid, (long long)st.tokens, (long long)st.loss_tokens, st.n_cut,
		o->p.trainer.n_ctx, st.n_dropped);
	return 0;
}

int cmd_finetune(int argc, char **argv)
{
	struct ft_opts o = { .p = hearth_finetune_default_params() };
	o.p.trainer.targets = 0x0f;
	int rc = parse_args(&o, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	char ckpt_buf[4096];
	snprintf(ckpt_buf, sizeof ckpt_buf, "%s.ckpt", o.out);
	const char *ckpt = o.ckpt ? o.ckpt : ckpt_buf;
	struct hearth_model_params mp = hearth_model_default_params();
	mp.no_repack = true; /* the trainer reads the file's layout: no decoding copies */
	struct hearth_err err = { 0 };
	struct hearth_model *m = NULL;
	struct hearth_dataset *d = NULL;
	struct hearth_finetune *ft = NULL;
	char *tmpl = NULL;
	rc = 1;
	const char *path = cli_model_path("finetune", o.model);
	if (!path)
		goto out;
	if (hearth_model_load(&m, path, &mp, &err)) {
		fprintf(stderr, "hearth finetune: %s\n", err.msg);
		goto out;
	}
	if (load_data(&o, m, &d, &tmpl))
		goto out;
	if (hearth_finetune_new(&ft, m, d, &o.p, &err) || (o.resume && hearth_finetune_resume(ft, o.resume, &err))) {
		fprintf(stderr, "hearth finetune: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "hearth finetune: %d adapters of rank %d, %lld steps%s%s\n",
		hearth_trainer_n_lora(hearth_finetune_trainer(ft)), o.p.trainer.rank,
		(long long)hearth_finetune_n_steps(ft), o.resume ? ", resuming from " : "", o.resume ? o.resume : "");
	signal(SIGINT, on_sigint);
	struct hearth_dataset_stats st;
	hearth_dataset_stats(d, &st);
	if ((rc = train_loop(ft, &o, ckpt, st.n_valid > 0)))
		goto out;
	if (hearth_finetune_save(ft, o.out, &err)) {
		fprintf(stderr, "hearth finetune: %s\n", err.msg);
		rc = 1;
		goto out;
	}
	fprintf(stderr, "hearth finetune: wrote %s\n", o.out);
out:
	hearth_finetune_free(ft);
	hearth_dataset_free(d);
	hearth_model_free(m);
	free(tmpl);
	return rc;
}
