# The growth model fitted by lme4, as the reference for stats.reml_growth: fixed effects, their
# standard errors, theta, sigma, the random-effect covariance, the REML criterion and (unless
# --no-df) lmerTest's Satterthwaite degrees of freedom, as JSON with every digit.
#
#   Rscript infra/benchmarks/lme4_golden.R DATA.csv OUT.json [--no-df]
#
# DATA.csv has columns participant, arm, wave, score (infra/benchmarks/growth_panel.py writes
# it); the control arm is "control". Called by infra/benchmarks/lme4_golden.py (the golden
# numbers in tests/stats) and by the growth benchmark (the timings).
#
# The optimiser's tolerances are absolute and tight, with the relative ones switched off: with
# nloptwrap's defaults (xtol_rel = 1e-6 stays active beside any xtol_abs) lme4 stopped with a
# gradient of 0.03 on the REML criterion, and theta 4e-6 short of the optimum.
suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(data.table)
})

args <- commandArgs(trailingOnly = TRUE)
with_df <- !("--no-df" %in% args)
data <- fread(args[1], colClasses = c("character", "character", "numeric", "numeric"))
data[, arm := relevel(factor(arm), "control")]

control <- lmerControl(
  optimizer = "nloptwrap",
  optCtrl = list(xtol_abs = 1e-14, ftol_abs = 1e-14, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5),
  calc.derivs = FALSE
)
started <- proc.time()
fit <- lmer(score ~ wave * arm + (1 + wave | participant), data = data, REML = TRUE,
            control = control)
elapsed <- proc.time() - started

fixed <- fixef(fit)
result <- list(
  r_call = paste(
    "lmer(score ~ wave * arm + (1 + wave | participant), data = data, REML = TRUE,",
    "control = lmerControl(optimizer = \"nloptwrap\", optCtrl = list(xtol_abs = 1e-14,",
    "ftol_abs = 1e-14, xtol_rel = 0, ftol_rel = 0, maxeval = 1e5), calc.derivs = FALSE))"
  ),
  versions = list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    Matrix = as.character(packageVersion("Matrix"))
  ),
  participants = length(unique(data$participant)),
  observations = nrow(data),
  score_sum = sum(data$score),
  names = names(fixed),
  fixed_effects = unname(fixed),
  std_errors = unname(sqrt(diag(as.matrix(vcov(fit))))),
  theta = unname(getME(fit, "theta")),
  sigma = sigma(fit),
  random_covariance = unname(as.matrix(VarCorr(fit)$participant[, ])),
  reml_criterion = REMLcrit(fit),
  evaluations = fit@optinfo$feval,
  optimiser_message = fit@optinfo$message,
  seconds = unname(elapsed["elapsed"]),
  cpu_seconds = unname(elapsed["user.self"] + elapsed["sys.self"])
)
if (with_df) {
  # Satterthwaite's df as lmerTest computes them (numDeriv Hessian of the REML deviance in
  # (theta, sigma), Jacobian of vcov(beta)), on this very fit.
  tested <- lmerTest::as_lmerModLmerTest(fit)
  table <- summary(tested)$coefficients
  result$df <- unname(table[, "df"])
  result$versions$lmerTest <- as.character(packageVersion("lmerTest"))
}
write(toJSON(result, digits = NA, auto_unbox = TRUE, pretty = TRUE), args[2])
