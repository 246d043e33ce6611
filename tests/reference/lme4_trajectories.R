# Reference values for alliance_lib.trajectories (fit_mixed / fit_trajectory / compare_trajectories).
#
# Run from the repository root after `python tests/reference/make_trajectory_data.py`:
#     Rscript tests/reference/lme4_trajectories.R
# Writes tests/reference/fixtures/lme4_trajectories.json (full precision) and sleepstudy.csv.
# Uses Debian's r-base-core, r-cran-lme4, r-cran-lmertest, r-cran-jsonlite; the versions used are
# recorded in the JSON ("versions").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

fx <- "tests/reference/fixtures"
write.csv(lme4::sleepstudy, file.path(fx, "sleepstudy.csv"), row.names = FALSE)
sleep <- read.csv(file.path(fx, "sleepstudy.csv"))
sleep$Subject <- factor(sleep$Subject)
three <- read.csv(file.path(fx, "traj_three_level.csv"))
drop <- read.csv(file.path(fx, "traj_dropout.csv"))
bound <- read.csv(file.path(fx, "traj_boundary.csv"))
three$t1 <- pmin(three$session, 4)
three$t2 <- pmax(three$session - 4, 0)

describe <- function(m, data_name, with_ranef = FALSE) {
  s <- summary(m)  # lmerTest: Satterthwaite df and p
  cf <- as.data.frame(s$coefficients)
  vc <- as.data.frame(VarCorr(m))
  out <- list(
    data = data_name,
    formula = paste(deparse(formula(m), width.cutoff = 500L), collapse = ""),
    reml = isREML(m),
    fixed = data.frame(term = rownames(cf), estimate = cf[["Estimate"]],
                       se = cf[["Std. Error"]], df = cf[["df"]], t = cf[["t value"]],
                       p = cf[["Pr(>|t|)"]]),
    random = data.frame(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov,
                        sdcor = vc$sdcor),
    loglik = as.numeric(logLik(m)),
    aic = AIC(m),
    bic = BIC(m),
    nobs = nobs(m),
    singular = isSingular(m),
    theta = unname(getME(m, "theta")),
    messages = m@optinfo$conv$lme4$messages
  )
  if (with_ranef) {
    re <- as.data.frame(ranef(m, condVar = TRUE))
    out$ranef <- data.frame(grp = as.character(re$grpvar), term = as.character(re$term),
                            level = as.character(re$grp), condval = re$condval,
                            condsd = re$condsd)
  }
  out
}

models <- list()
models$sleep_reml <- describe(lmer(Reaction ~ Days + (Days | Subject), sleep), "sleepstudy", TRUE)
models$sleep_ml <- describe(lmer(Reaction ~ Days + (Days | Subject), sleep, REML = FALSE),
                            "sleepstudy", TRUE)
f3 <- wai ~ session + (session | client_id) + (1 | therapist_id)
models$three_reml <- describe(lmer(f3, three), "traj_three_level", TRUE)
models$three_ml <- describe(lmer(f3, three, REML = FALSE), "traj_three_level")
models$three_cov <- describe(
  lmer(wai ~ session + experience + ipp + session:experience + session:ipp + experience:ipp +
         (session | client_id) + (1 | therapist_id), three), "traj_three_level")
m_lin <- lmer(wai ~ session + (session | client_id), three)
m_quad <- lmer(wai ~ session + I(session^2) + (session | client_id), three)
models$linear <- describe(m_lin, "traj_three_level")
models$quadratic <- describe(m_quad, "traj_three_level")
models$log <- describe(lmer(wai ~ log(session) + (log(session) | client_id), three),
                       "traj_three_level")
models$piecewise <- describe(lmer(wai ~ t1 + t2 + (t1 + t2 | client_id), three),
                             "traj_three_level")
models$dropout <- describe(lmer(wai ~ session + (session | client_id), drop), "traj_dropout")
models$boundary <- describe(lmer(wai ~ session + (session | client_id), bound), "traj_boundary")

a <- suppressMessages(anova(m_lin, m_quad))  # refits both with ML
anova_tab <- data.frame(model = c("linear", "quadratic"), npar = a$npar, loglik = a$logLik,
                        aic = a$AIC, bic = a$BIC, deviance = a$deviance, chisq = a$Chisq,
                        df = a[["Df"]], p = a[["Pr(>Chisq)"]])

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  Matrix = as.character(packageVersion("Matrix")),
  numDeriv = as.character(packageVersion("numDeriv")),
  jsonlite = as.character(packageVersion("jsonlite"))
)
write_json(list(versions = versions, models = models, anova = anova_tab),
           file.path(fx, "lme4_trajectories.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE, na = "null")
cat("wrote", file.path(fx, "lme4_trajectories.json"), "\n")
