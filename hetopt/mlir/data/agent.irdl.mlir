// hetopt's agent dialects, defined in IRDL and loaded into MLIR with irdl.load_dialects.
// MLIR's verifier checks every op against these definitions: operand and result types,
// and that every listed attribute is present with the right kind (string, integer, float).
// Attributes not listed (description, devices, cost, placement) are optional and discardable.
// A node's in-edges are its operands (`agent.edge` results or the graph's request argument);
// every op produces one `!agent.msg` except agent.back_edge.

// Agent-graph structure: messages, edges and loops, nested agents.
irdl.dialect @agent {
  // A message flowing along an edge: the request, a transcript, a KV cache, a tool answer.
  irdl.type @msg
  // A forward edge: the message of `src` sent on, `payload_bytes` per traversal, taken with `probability`; `index` is its position in the graph's edge list.
  irdl.operation @edge {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.integer"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"index" = %a0, "payload_bytes" = %a1, "probability" = %a2}
  }
  // A bounded back edge from `src` (the operand) to the node named `target`: `expected_iterations` per entry into the loop, at most `max_iterations`.
  irdl.operation @back_edge {
    %in = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.integer"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.integer"
    irdl.operands(inputs: %in)
    irdl.attributes {"index" = %a0, "target" = %a1, "payload_bytes" = %a2, "expected_iterations" = %a3, "max_iterations" = %a4}
  }
  // A nested agent: the function `callee` is its graph.
  irdl.operation @call {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.symbol_ref"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "callee" = %a1}
  }
}

// Decoder LLM calls (the paper's llm.call) and their phases after decomposition.
irdl.dialect @llm {
  // One LLM call: a prompt of `input_tokens`, `output_tokens` generated.
  irdl.operation @call {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.integer"
    %a4 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "model" = %a1, "precision" = %a2, "input_tokens" = %a3, "output_tokens" = %a4}
  }
  // Prompt processing of an LLM call.
  irdl.operation @prefill {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.string"
    %a4 = irdl.base "#builtin.integer"
    %a5 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "model" = %a2, "precision" = %a3, "input_tokens" = %a4, "output_tokens" = %a5}
  }
  // The prompt's KV cache, `payload_bytes`, from the prefill device to the decode device.
  irdl.operation @kv_transfer {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.float"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "payload_bytes" = %a2}
  }
  // Token generation of an LLM call.
  irdl.operation @decode {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.string"
    %a4 = irdl.base "#builtin.integer"
    %a5 = irdl.base "#builtin.integer"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "model" = %a2, "precision" = %a3, "input_tokens" = %a4, "output_tokens" = %a5}
  }
}

// Encoder models: speech-to-text, text-to-speech, classifiers, embeddings.
irdl.dialect @model {
  // One forward pass over `tokens` tokens.
  irdl.operation @encode {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "model" = %a1, "precision" = %a2, "tokens" = %a3}
  }
}

// Tool calls (the paper's tool.invoke) and their lookup and compute stages.
irdl.dialect @tool {
  // An external call of `latency_s` sending `request_bytes` and receiving `response_bytes`; optional `compute_flops`/`compute_mem_bytes` parse the answer.
  irdl.operation @invoke {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "latency_s" = %a1, "request_bytes" = %a2, "response_bytes" = %a3}
  }
  // The network stage of a tool call.
  irdl.operation @lookup {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "latency_s" = %a2, "request_bytes" = %a3, "response_bytes" = %a4}
  }
  // The host stage of a tool call: parsing and ranking the answer.
  irdl.operation @compute {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "flops" = %a2, "mem_bytes" = %a3}
  }
}

// Agent memory: vector-database lookups, stores and KV-cache management.
irdl.dialect @memory {
  // A vector search over `vectors` vectors of `dim` elements (a fraction `scan_fraction` scanned), returning `top_k`.
  irdl.operation @load {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.integer"
    %a2 = irdl.base "#builtin.integer"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    %a5 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "vectors" = %a1, "dim" = %a2, "bytes_per_element" = %a3, "scan_fraction" = %a4, "top_k" = %a5}
  }
  // Storing an observation (the paper's memory.store).
  irdl.operation @store {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "flops" = %a1, "mem_bytes" = %a2, "footprint_bytes" = %a3, "static_latency_s" = %a4}
  }
  // KV-cache management work.
  irdl.operation @kv_cache {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "flops" = %a1, "mem_bytes" = %a2, "footprint_bytes" = %a3, "static_latency_s" = %a4}
  }
}

// General host computation.
irdl.dialect @compute {
  // A block of work: FLOPs, memory traffic, footprint and a fixed latency.
  irdl.operation @run {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "flops" = %a1, "mem_bytes" = %a2, "footprint_bytes" = %a3, "static_latency_s" = %a4}
  }
}

// Control nodes: plain logic, or an LLM or encoder that decides the next step.
irdl.dialect @control {
  // Control logic with a work vector.
  irdl.operation @route {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.float"
    %a2 = irdl.base "#builtin.float"
    %a3 = irdl.base "#builtin.float"
    %a4 = irdl.base "#builtin.float"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "flops" = %a1, "mem_bytes" = %a2, "footprint_bytes" = %a3, "static_latency_s" = %a4}
  }
  // A decoder LLM acting as the router.
  irdl.operation @llm {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.integer"
    %a4 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "model" = %a1, "precision" = %a2, "input_tokens" = %a3, "output_tokens" = %a4}
  }
  // An encoder model acting as the router (a classifier).
  irdl.operation @encode {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "model" = %a1, "precision" = %a2, "tokens" = %a3}
  }
}

// Mixture of experts after decomposition: token routing.
irdl.dialect @gate {
  // Routes each token to `experts_per_token` of `n_experts` experts.
  irdl.operation @select {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.integer"
    %a3 = irdl.base "#builtin.integer"
    irdl.operands(inputs: variadic %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "n_experts" = %a2, "experts_per_token" = %a3}
  }
}

// Mixture of experts after decomposition: tensor-parallel expert phases (the paper's expert.tp.prefill and expert.tp.decode; MLIR op names cannot hold a second dot).
irdl.dialect @expert {
  // Expert-parallel prefill of the routed tokens.
  irdl.operation @tp_prefill {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.string"
    %a4 = irdl.base "#builtin.integer"
    %a5 = irdl.base "#builtin.integer"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "model" = %a2, "precision" = %a3, "input_tokens" = %a4, "output_tokens" = %a5}
  }
  // Expert-parallel decode of the routed tokens.
  irdl.operation @tp_decode {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.string"
    %a3 = irdl.base "#builtin.string"
    %a4 = irdl.base "#builtin.integer"
    %a5 = irdl.base "#builtin.integer"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "model" = %a2, "precision" = %a3, "input_tokens" = %a4, "output_tokens" = %a5}
  }
}

// Mixture of experts after decomposition: combining expert outputs.
irdl.dialect @merge {
  // The gate-weighted sum of the experts' outputs.
  irdl.operation @expert_outputs {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.integer"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "experts_per_token" = %a2}
  }
}

// Collective communication after decomposition.
irdl.dialect @comm {
  // An all-reduce of `message_bytes` across the tensor-parallel group.
  irdl.operation @allreduce {
    %in = irdl.base @agent::@msg
    %out = irdl.base @agent::@msg
    %a0 = irdl.base "#builtin.string"
    %a1 = irdl.base "#builtin.string"
    %a2 = irdl.base "#builtin.float"
    irdl.operands(inputs: %in)
    irdl.results(out: %out)
    irdl.attributes {"node" = %a0, "op" = %a1, "message_bytes" = %a2}
  }
}
