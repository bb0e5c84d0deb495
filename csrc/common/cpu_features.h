// Which CPU kernel variant runs: chosen once from the CPU, overridable for tests and comparisons.
#pragma once
#include <string>

namespace sc {

enum class CpuIsa { generic, avx2 };

CpuIsa active_cpu_isa();
bool cpu_supports(CpuIsa isa);
void set_cpu_isa(const std::string& name);  // "generic", "avx2", or "auto"
const char* cpu_isa_name(CpuIsa isa);

}  // namespace sc
