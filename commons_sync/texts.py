"""The sentences people read about the engine's decisions, in French and English (one place)."""

from __future__ import annotations

from commons_sync.i18n import format_money, t


def reason(code: str, lang: str, *, money_currency: str = "EUR", **params) -> str:
    """The sentence for a refusal reason code (see `engine.errors.REASONS`)."""
    money = {k: format_money(v, money_currency, lang) for k, v in params.items()
             if k in ("amount", "balance", "room", "pledged", "goal", "cap") and isinstance(v, int)}
    p = {**{k: v for k, v in params.items()}, **money}
    sentences = {
        "amount_empty": lambda: t(lang, "Il manque le montant."),
        "amount_malformed": lambda: t(lang, "« {text} » n'est pas un montant lisible (exemples : 50, 50 €, 1 200,50).", text=p.get("text", "")),
        "amount_ambiguous": lambda: t(lang, "« {text} » est ambigu : une virgule ou un point suivi de trois chiffres peut séparer les milliers ou les décimales. Écrivez 1200 ou 1 200, ou 1,20.", text=p.get("text", "")),
        "amount_too_many_decimals": lambda: t(lang, "« {text} » a plus de deux décimales.", text=p.get("text", "")),
        "amount_not_positive": lambda: t(lang, "Le montant doit être supérieur à zéro."),
        "amount_too_large": lambda: t(lang, "« {text} » est trop grand pour être un montant.", text=p.get("text", "")),
        "round_not_open": lambda: t(lang, "La campagne n'est pas ouverte."),
        "round_not_started": lambda: t(lang, "La campagne « {round} » n'est pas encore ouverte.", round=p.get("round", "")),
        "round_closed": lambda: t(lang, "La campagne « {round} » est close.", round=p.get("round", "")),
        "not_member": lambda: t(lang, "Seuls les membres du groupe « {group} » peuvent promettre dans cette campagne.", group=p.get("group", "")),
        "over_balance": lambda: t(lang, "La promesse de {amount} dépasse votre solde.", amount=p.get("amount", "")),
        "over_cap": lambda: t(lang, "La promesse de {amount} dépasserait le plafond du commun (il reste {room}).", amount=p.get("amount", ""), room=p.get("room", "")),
        "commons_not_open": lambda: t(lang, "Ce commun n'accepte pas de promesses (statut : {status}).", status=p.get("status", "")),
        "several_pledge_lines": lambda: t(lang, "Un message ne peut contenir qu'une seule ligne de promesse."),
        "before_commons": lambda: t(lang, "Ce message précède l'ouverture du commun : il ne compte pas comme promesse."),
        "not_found": lambda: t(lang, "Introuvable : {what} {key}.", what=p.get("what", ""), key=p.get("key", "")),
        "invalid_operation": lambda: t(lang, "Opération impossible."),
        "invalid_date": lambda: t(lang, "Date invalide : « {date} » (format attendu : 2026-12-01 ou 2026-12-01T18:00).", date=p.get("date", "")),
        "closes_before_opens": lambda: t(lang, "La clôture ({closes}) doit venir après l'ouverture ({opens}).", closes=p.get("closes", ""), opens=p.get("opens", "")),
        "invalid_currency": lambda: t(lang, "Devise inconnue : « {currency} » (code ISO 4217, par exemple EUR).", currency=p.get("currency", "")),
        "invalid_ratio": lambda: t(lang, "Règle d'abondement invalide : il faut un ratio positif et une réserve positive."),
        "invalid_threshold": lambda: t(lang, "Seuil partiel invalide : {value} (entre 1 et 100).", value=p.get("value", "")),
        "invalid_slug": lambda: t(lang, "Identifiant de campagne invalide : « {slug} » (minuscules, chiffres et tirets).", slug=p.get("slug", "")),
        "duplicate_slug": lambda: t(lang, "Une campagne « {slug} » existe déjà.", slug=p.get("slug", "")),
        "duplicate_topic": lambda: t(lang, "Le sujet {topic_id} est déjà un commun.", topic_id=p.get("topic_id", "")),
        "duplicate_wiki_title": lambda: t(lang, "La page « {title} » est déjà la fiche d'un autre commun.", title=p.get("title", "")),
        "not_a_username": lambda: t(lang, "« {name} » n'est pas un nom d'utilisateur du forum (une adresse e-mail n'est jamais publiée).", name=p.get("name", "")),
        "empty_title": lambda: t(lang, "Le titre est vide."),
        "round_already_closed": lambda: t(lang, "La campagne « {round} » est déjà close.", round=p.get("round", "")),
        "payment_backwards": lambda: t(lang, "Le suivi ne revient pas en arrière : déjà « {current} ».", current=p.get("current", "")),
        "set_below_pledged": lambda: t(lang, "L'enveloppe ne peut pas être inférieure aux promesses en cours ({pledged}).", pledged=p.get("pledged", "")),
        "contribution_over_cap": lambda: t(lang, "L'apport dépasserait le plafond du commun (il reste {room}).", room=p.get("room", "")),
        "goal_required": lambda: t(lang, "Un plafond demande un objectif."),
        "cap_below_goal": lambda: t(lang, "Le plafond ({cap}) est inférieur à l'objectif ({goal}).", cap=p.get("cap", ""), goal=p.get("goal", "")),
    }
    return sentences.get(code, sentences["invalid_operation"])()
