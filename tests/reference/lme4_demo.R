# Reference fits of the demo study (wave 3) with lme4 + lmerTest: the client-rated alliance
# growth model without and with a therapist random intercept.
#
# Run from the repository root after `.venv/bin/python tests/reference/make_demo_sessions.py`:
#     Rscript tests/reference/lme4_demo.R
# Writes tests/reference/fixtures/lme4_demo.json with the R / lme4 / lmerTest versions used.
# Generated with R 4.2.2, lme4 1.1.31, lmerTest 3.1.3, jsonlite 1.8.4 (Debian r-cran-*).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

fx <- "tests/reference/fixtures"
d <- read.csv(file.path(fx, "demo_sessions.csv"), colClasses = c(client_id = "character",
                                                                  therapist_id = "character"))
d <- d[!is.na(d$alliance), ]

describe <- function(m) {
  s <- summary(m)
  cf <- as.data.frame(s$coefficients)
  vc <- as.data.frame(VarCorr(m))
  list(
    fixed = data.frame(term = rownames(cf), estimate = cf[["Estimate"]],
                       se = cf[["Std. Error"]], df = cf[["df"]], p = cf[["Pr(>|t|)"]]),
    random = data.frame(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov,
                        sdcor = vc$sdcor),
    loglik = as.numeric(logLik(m)), nobs = nobs(m), singular = isSingular(m),
    messages = m@optinfo$conv$lme4$messages
  )
}

# lme4's default stopping rule leaves |gradient| ~ 1e-3 on these data; a tight tolerance makes
# the reference precise enough for the 1e-5 comparison of fixed effects.
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12,
                                    maxeval = 1e5))
f3 <- alliance ~ session + (session | client_id) + (1 | therapist_id)
models <- list(
  two_level = describe(lmer(alliance ~ session + (session | client_id), d, control = tight)),
  three_level = describe(lmer(f3, d, control = tight)),
  three_level_ml = describe(lmer(f3, d, REML = FALSE, control = tight))
)
versions <- list(R = paste(R.version$major, R.version$minor, sep = "."),
                 lme4 = as.character(packageVersion("lme4")),
                 lmerTest = as.character(packageVersion("lmerTest")),
                 jsonlite = as.character(packageVersion("jsonlite")))
write(toJSON(list(models = models, versions = versions), digits = NA, auto_unbox = TRUE,
             pretty = TRUE, na = "null"),
      file.path(fx, "lme4_demo.json"))
