/* tests.h - the registry: every test function, in the order they run.
 * HEARTH_DEMO_TESTS end badly on purpose and run only with HEARTH_TEST_DEMO
 * set (test_harness_isolation runs them in a runner of their own). */
#ifndef HEARTH_TESTS_H
#define HEARTH_TESTS_H

#define HEARTH_TESTS(X)              \
	X(test_harness_isolation)    \
	X(test_fp16_conversions)     \
	X(test_bigmem)               \
	X(test_gguf_roundtrip)       \
	X(test_gguf_truncated)       \
	X(test_gguf_malformed)       \
	X(test_gguf_kv_json)         \
	X(test_qtype_dequant_dot)    \
	X(test_qtype_quantize)       \
	X(test_qtype_mxfp4)          \
	X(test_kern_isa_vs_ref)      \
	X(test_kern_packed_layouts)  \
	X(test_kern_nonfinite_activations) \
	X(test_kern_attn)           \
	X(test_kern_attn_f16)       \
	X(test_kern_swiglu)         \
	X(test_kern_geglu)          \
	X(test_kern_nonfinite)      \
	X(test_tok_vocab_vectors)    \
	X(test_tok_hf_golden)        \
	X(test_tok_roundtrip)        \
	X(test_tok_stream_utf8)      \
	X(test_tok_nfc_lossy)        \
	X(test_tok_max_same_ids)     \
	X(test_tok_max_bounded)      \
	X(test_tok_detok_control)    \
	X(test_tok_byte_token_text)  \
	X(test_tok_chat_plain_spans) \
	X(test_chat_no_role_injection) \
	X(test_chat_bos_and_builtin) \
	X(test_chat_reader)          \
	X(test_chat_out)             \
	X(test_chat_forced_calls)    \
	X(test_toolcall_formats)     \
	X(test_toolcall_streaming)   \
	X(test_toolcall_detect)      \
	X(test_toolcall_limits)      \
	X(test_jinja_fixtures)       \
	X(test_jinja_semantics)      \
	X(test_jinja_errors)         \
	X(test_jinja_spans)          \
	X(test_jinja_concurrent)     \
	X(test_convert_hf)           \
	X(test_convert_errors)       \
	X(test_convert_hf_models)    \
	X(test_convert_hf_moe)       \
	X(test_convert_hf_permute)   \
	X(test_convert_hf_rope_llama3) \
	X(test_convert_stream_writer) \
	X(test_convert_hf_errors)    \
	X(test_convert_hf_fault)     \
	X(test_convert_cli)          \
	X(test_quantize_exact)       \
	X(test_quantize_kquants)     \
	X(test_quantize_generates)   \
	X(test_quantize_errors)      \
	X(test_quantize_recipes)     \
	X(test_quantize_threads)     \
	X(test_imatrix_read)         \
	X(test_imatrix_errors)       \
	X(test_imatrix_weighted)     \
	X(test_imatrix_quantize)     \
	X(test_sampler)              \
	X(test_sampler_select)       \
	X(test_sampler_row_kernels)  \
	X(test_sampler_logprobs)     \
	X(test_sampler_uncertainty)  \
	X(test_grammar_parse)        \
	X(test_grammar_match)        \
	X(test_grammar_bounds)       \
	X(test_grammar_mask)         \
	X(test_grammar_sampler)      \
	X(test_json_schema_errors)   \
	X(test_json_schema_sampled)  \
	X(test_model_synthetic)      \
	X(test_model_llama2c)        \
	X(test_model_refs)           \
	X(test_hidden_lens)          \
	X(test_hidden_errors)        \
	X(test_hidden_sched)         \
	X(test_moe_route)            \
	X(test_moe_act)              \
	X(test_moe_batch_bits)       \
	X(test_moe_synthetic)        \
	X(test_kv_parent_chain)      \
	X(test_kv_name_collision)    \
	X(test_kv_index)             \
	X(test_kv_salt)              \
	X(test_kv_prefix)            \
	X(test_kv_swa)               \
	X(test_state_round_trip)     \
	X(test_state_refused)        \
	X(test_state_sched)          \
	X(test_sched)                \
	X(test_sched_sampled)        \
	X(test_sched_sampled_moe)    \
	X(test_sched_families)       \
	X(test_swa_window)           \
	X(test_swa_memory)           \
	X(test_families_errors)      \
	X(test_families_softcap)     \
	X(test_families_longrope)    \
	X(test_sched_score)          \
	X(test_fault_model_load)     \
	X(test_fault_tokenize)       \
	X(test_fault_grammar)        \
	X(test_fault_sched)          \
	X(test_fault_swa)            \
	X(test_conns)                \
	X(test_http_routes)          \
	X(test_fault_http)           \
	X(test_models)               \
	X(test_ollama_wire)          \
	X(test_ollama_reply)         \
	X(test_cli)                 \
	X(test_store_refs)          \
	X(test_pull_hub)            \
	X(test_pull_resume)         \
	X(test_pull_refused)        \
	X(test_pull_slow)           \
	X(test_pull_modelscope)     \
	X(test_pull_cli)            \
	X(test_cli_perplexity)      \
	X(test_cli_kld)             \
	X(test_cli_prompt_cache)    \
	X(test_cli_dump_layers)     \
	X(test_imatrix_collect)     \
	X(test_imatrix_other_model) \
	X(test_cli_imatrix)         \
	X(test_imatrix_write)       \
	X(test_steer_file)          \
	X(test_steer_logits)        \
	X(test_steer_sched)         \
	X(test_steer_compute)       \
	X(test_lora_file)           \
	X(test_lora_logits)         \
	X(test_lora_sched)

#define HEARTH_DEMO_TESTS(X)  \
	X(test_demo_crash)    \
	X(test_demo_exit)     \
	X(test_demo_hang)     \
	X(test_demo_leak)     \
	X(test_demo_pass)

#define X(name) void name(void);
HEARTH_TESTS(X)
HEARTH_DEMO_TESTS(X)
#undef X

#endif /* HEARTH_TESTS_H */
