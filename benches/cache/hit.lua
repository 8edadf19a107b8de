-- wrk script: POST the same /v1/tts request over and over (run.sh makes sure it is already
-- cached); non-2xx answers are counted in `errors`.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("TTS_BENCH_BODY")

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests=%d errors=%d req_per_s=%.0f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.requests / (summary.duration / 1e6)))
end
