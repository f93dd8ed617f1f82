module {
  func.func @voice_agent(%arg0: !agent.msg) -> !agent.msg attributes {agent.graph, description = "The paper's \C2\A75 evaluation workload (Figure 2): user voice -> speech-to-text (Whisper large-v3 over a 30 s window = 1500 encoder frames) -> LLM (Llama-3-70B fp16, 1024 prompt tokens, 256 output tokens) that may call web search until it has enough context (expected once, at most twice) -> text-to-speech (XTTS-v2) -> agent voice.", node_order = ["stt", "llm", "web_search", "tts"], request_rate_per_s = 2.000000e+00 : f64, sla = {e2e_s = 1.500000e+01 : f64}} {
    %0 = "model.encode"(%arg0) {model = "whisper-large-v3", node = "stt", op = "stt", precision = "fp16", tokens = 1500 : i64} : (!agent.msg) -> !agent.msg
    %1 = "agent.edge"(%0) {index = 0 : i64, payload_bytes = 4.096000e+03 : f64, probability = 1.000000e+00 : f64} : (!agent.msg) -> !agent.msg
    %2 = "llm.prefill"(%1) {input_tokens = 1024 : i64, model = "llama-3-70b", node = "llm", op = "llm.prefill", output_tokens = 256 : i64, precision = "fp16"} : (!agent.msg) -> !agent.msg
    %3 = "llm.kv_transfer"(%2) {node = "llm", op = "llm.kv_transfer", payload_bytes = 0x41B4000000000000 : f64} : (!agent.msg) -> !agent.msg
    %4 = "llm.decode"(%3) {input_tokens = 1024 : i64, model = "llama-3-70b", node = "llm", op = "llm.decode", output_tokens = 256 : i64, precision = "fp16"} : (!agent.msg) -> !agent.msg
    %5 = "agent.edge"(%4) {index = 1 : i64, payload_bytes = 1.024000e+03 : f64, probability = 1.000000e+00 : f64} : (!agent.msg) -> !agent.msg
    %6 = "tool.lookup"(%5) {latency_s = 3.500000e-01 : f64, node = "web_search", op = "web_search.lookup", request_bytes = 5.120000e+02 : f64, response_bytes = 2.000000e+04 : f64} : (!agent.msg) -> !agent.msg
    %7 = "agent.edge"(%6) {index = -1 : i64, payload_bytes = 2.000000e+04 : f64, probability = 1.000000e+00 : f64} : (!agent.msg) -> !agent.msg
    %8 = "tool.compute"(%7) {flops = 2.000000e+08 : f64, mem_bytes = 5.000000e+07 : f64, node = "web_search", op = "web_search.compute"} : (!agent.msg) -> !agent.msg
    %9 = "agent.edge"(%4) {index = 3 : i64, payload_bytes = 2.048000e+03 : f64, probability = 1.000000e+00 : f64} : (!agent.msg) -> !agent.msg
    %10 = "model.encode"(%9) {model = "xtts-v2", node = "tts", op = "tts", precision = "fp16", tokens = 256 : i64} : (!agent.msg) -> !agent.msg
    "agent.back_edge"(%8) {expected_iterations = 1.000000e+00 : f64, index = 2 : i64, max_iterations = 2 : i64, payload_bytes = 2.000000e+04 : f64, target = "llm.prefill"} : (!agent.msg) -> ()
    return %10 : !agent.msg
  }
}
